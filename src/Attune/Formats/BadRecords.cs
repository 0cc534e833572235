namespace Attune.Formats;

/// <summary>
/// What a data loader does with a bad record: stop with its error (the default), or — when the user asks for
/// skipping — count it, keep the first few messages for the report, and go on.
/// </summary>
public sealed class BadRecords
{
    public bool Skip { get; init; }
    public int Skipped { get; private set; }
    public List<string> FirstMessages { get; } = [];

    /// <summary>True when <paramref name="error"/> was counted and the record is to be skipped; false when it must be thrown.</summary>
    public bool Absorb(AttuneException error)
    {
        if (!Skip) return false;
        Skipped++;
        if (FirstMessages.Count < 3) FirstMessages.Add(error.Message);
        return true;
    }

    /// <summary>Runs <paramref name="read"/> for one record; a bad record yields null when skipping.</summary>
    public T? Guard<T>(Func<T> read) where T : class
    {
        try { return read(); }
        catch (AttuneException e) when (Absorb(e)) { return null; }
    }
}
