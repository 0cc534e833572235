namespace Attune.Evaluation.Metrics;

/// <summary>Win rate ± standard error, the length-controlled win rate, ties and unreadable verdicts (rates in [0, 1]).</summary>
/// <param name="LengthSlope">The fitted weight of tanh(standardised length difference), model minus reference: positive when the judge prefers longer answers.</param>
public sealed record WinRate(double Rate, double StandardError, double LengthControlled, double LengthSlope, int Judged, int Ties, int Unreadable, int Retries)
{
    /// <summary>
    /// Win rate (mean preference, 1 = the model's answer preferred) with its standard error, and the length-controlled
    /// win rate by AlpacaEval 2.0's definition (<see cref="AlpacaEvalWinRate"/>, its length_controlled_minimal on
    /// character lengths), so that a figure here can stand beside a published one.
    /// </summary>
    /// <param name="lengthDifferences">Characters of the model's answer minus characters of the reference.</param>
    public static WinRate Fit(IReadOnlyList<double> preferences, IReadOnlyList<double> lengthDifferences, int ties, int unreadable, int retries)
    {
        if (preferences.Count == 0) return new WinRate(double.NaN, double.NaN, double.NaN, double.NaN, 0, 0, unreadable, retries);
        var m = AlpacaEvalWinRate.Compute(preferences.Select(p => (double?)(1 + p)).ToList(), lengthDifferences.Select(d => -d).ToList());
        return new WinRate(m.WinRate / 100, m.StandardError / 100, m.LengthControlled / 100, -m.LengthWeight, preferences.Count, ties, unreadable, retries);
    }
}
