namespace Attune.Training;

/// <summary>
/// Learning rate by step (0-based): constant, or linear warm-up to the peak followed by constant,
/// linear decay or cosine decay to <c>MinRatio</c>·peak at <c>TotalSteps</c> (the usual transformers schedules).
/// </summary>
public sealed record LearningRateSchedule
{
    public enum Shape { Constant, Linear, Cosine }

    public required double Peak { get; init; }
    public Shape Decay { get; init; } = Shape.Constant;
    public int WarmupSteps { get; init; }
    public int TotalSteps { get; init; } = 1;
    public double MinRatio { get; init; }

    public LearningRateSchedule Validate()
    {
        if (!(Peak > 0) || double.IsInfinity(Peak)) throw new AttuneException(null, "--lr", $"{Peak} must be a positive number");
        if (WarmupSteps < 0) throw new AttuneException(null, "--warmup-steps", "must be ≥ 0");
        if (TotalSteps < 1) throw new AttuneException(null, "--steps", "must be ≥ 1");
        if (!(MinRatio >= 0 && MinRatio <= 1)) throw new AttuneException(null, "--min-lr-ratio", "must be in [0, 1]");
        return this;
    }

    public double At(int step)
    {
        if (step < WarmupSteps) return Peak * (step + 1) / WarmupSteps;
        if (Decay == Shape.Constant) return Peak;
        double progress = Math.Clamp((double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps), 0, 1);
        double factor = Decay == Shape.Linear ? 1 - progress : 0.5 * (1 + Math.Cos(Math.PI * progress));
        return Peak * (MinRatio + (1 - MinRatio) * factor);
    }
}
