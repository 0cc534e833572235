using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Attune.Formats;

namespace Attune.Training;

public enum DpoLoss { Sigmoid, Ipo, Hinge }

public sealed record DpoOptions
{
    /// <summary>Strength of the pull towards the reference (TRL's default 0.1).</summary>
    public double Beta { get; init; } = 0.1;
    public DpoLoss Loss { get; init; } = DpoLoss.Sigmoid;
    /// <summary>Probability that a preference label is flipped (conservative DPO); sigmoid loss only.</summary>
    public double LabelSmoothing { get; init; }

    public void Validate()
    {
        if (!(Beta > 0)) throw new AttuneException(null, "--beta", "must be positive");
        if (LabelSmoothing is < 0 or >= 0.5) throw new AttuneException(null, "--label-smoothing", "must be in [0, 0.5)");
        if (LabelSmoothing > 0 && Loss != DpoLoss.Sigmoid) throw new AttuneException(null, "--label-smoothing", "applies to the sigmoid loss only");
    }
}

/// <summary>A preference: the same prompt followed by the chosen and by the rejected reply, targets on the reply.</summary>
public sealed record PreferencePair(TrainingExample Chosen, TrainingExample Rejected);

/// <summary>The reference model's log-likelihood of each pair's replies, computed once.</summary>
public sealed record ReferenceLogProbs(double[] Chosen, double[] Rejected);

/// <summary>
/// Direct preference optimisation (Rafailov et al., 2023) against a frozen reference. With
/// h = (log π(y_c|x) − log π_ref(y_c|x)) − (log π(y_r|x) − log π_ref(y_r|x)): <c>sigmoid</c> minimises
/// −(1−ε)·log σ(βh) − ε·log σ(−βh) (ε: label smoothing), <c>hinge</c> max(0, 1 − βh) (SLiC), and <c>ipo</c>
/// (h − 1/(2β))² with log-likelihoods averaged over the reply's tokens (Azar et al., 2023), as TRL computes them.
/// Rewards are β·(log π − log π_ref); the chosen and rejected replies of a pair share a micro-batch.
/// </summary>
public sealed class PreferenceObjective(IReadOnlyList<PreferencePair> pairs, ReferenceLogProbs reference, DpoOptions options) : ITrainingObjective
{
    public int Count => pairs.Count;

    public void Validate(int vocab)
    {
        for (int i = 0; i < pairs.Count; i++)
        {
            pairs[i].Chosen.Validate(vocab, $"pair {i + 1} (chosen)");
            pairs[i].Rejected.Validate(vocab, $"pair {i + 1} (rejected)");
        }
        if (reference.Chosen.Length != pairs.Count || reference.Rejected.Length != pairs.Count)
            throw new InvalidOperationException("reference log-probabilities do not match the pairs");
    }

    /// <summary>What a reply's summed log-likelihood is divided by for the loss: 1, or (IPO) its token count, for an average.</summary>
    double Length(TrainingExample e) => options.Loss == DpoLoss.Ipo ? e.TargetCount : 1;
    double Normalise(double logp, TrainingExample e) => logp / Length(e);

    public StepOutcome Run(TrainableModel model, IReadOnlyList<int> examples, int batchSize)
    {
        double beta = options.Beta, eps = options.LabelSmoothing, loss = 0, chosenReward = 0, rejectedReward = 0, correct = 0;
        long tokens = 0;
        int n = examples.Count;
        for (int start = 0; start < n; start += batchSize)
        {
            var micro = examples.Skip(start).Take(batchSize).ToList();
            var sequences = micro.SelectMany(i => new[] { pairs[i].Chosen, pairs[i].Rejected }).ToList();
            tokens += sequences.Sum(e => (long)e.Tokens.Length);
            var nll = model.Forward(sequences);
            var scales = new float[sequences.Count];
            for (int k = 0; k < micro.Count; k++)
            {
                var pair = pairs[micro[k]];
                double chosen = Normalise(-nll[2 * k], pair.Chosen) - Normalise(reference.Chosen[micro[k]], pair.Chosen);
                double rejected = Normalise(-nll[2 * k + 1], pair.Rejected) - Normalise(reference.Rejected[micro[k]], pair.Rejected);
                double h = chosen - rejected, z = beta * h;
                // The loss of the pair and its derivative with respect to h.
                double l, dh;
                switch (options.Loss)
                {
                    case DpoLoss.Sigmoid:
                        l = -(1 - eps) * LogSigmoid(z) - eps * LogSigmoid(-z);
                        dh = beta * (-(1 - eps) * Tensors.Ops.Sigmoid(-z) + eps * Tensors.Ops.Sigmoid(z));
                        break;
                    case DpoLoss.Hinge:
                        l = Math.Max(0, 1 - z);
                        dh = z < 1 ? -beta : 0;
                        break;
                    default:
                        double gap = h - 1 / (2 * beta);
                        l = gap * gap;
                        dh = 2 * gap;
                        break;
                }
                loss += l / n;
                chosenReward += beta * chosen / n;
                rejectedReward += beta * rejected / n;
                correct += chosen > rejected ? 1.0 / n : 0;
                // h rises with log π(chosen) = −NLL(chosen) (÷ tokens for IPO), falls with the rejected one.
                scales[2 * k] = (float)(-dh / n / Length(pair.Chosen));
                scales[2 * k + 1] = (float)(dh / n / Length(pair.Rejected));
            }
            model.Backward(scales);
        }
        return new StepOutcome(loss, tokens, new Dictionary<string, double>
        {
            ["rewards/chosen"] = chosenReward,
            ["rewards/rejected"] = rejectedReward,
            ["rewards/margins"] = chosenReward - rejectedReward,
            ["rewards/accuracies"] = correct,
        });
    }

    static double LogSigmoid(double x) => x >= 0 ? -Math.Log(1 + Math.Exp(-x)) : x - Math.Log(1 + Math.Exp(x));

    /// <summary>Summed log-likelihood of each pair's chosen and rejected reply under <paramref name="model"/> (no gradients).</summary>
    public static ReferenceLogProbs LogProbs(TrainableModel model, IReadOnlyList<PreferencePair> pairs, int batchSize)
    {
        var chosen = new double[pairs.Count];
        var rejected = new double[pairs.Count];
        for (int start = 0; start < pairs.Count; start += batchSize)
        {
            int count = Math.Min(batchSize, pairs.Count - start);
            var nll = model.Evaluate(Enumerable.Range(start, count).SelectMany(i => new[] { pairs[i].Chosen, pairs[i].Rejected }).ToList());
            for (int k = 0; k < count; k++)
            {
                chosen[start + k] = -nll[2 * k];
                rejected[start + k] = -nll[2 * k + 1];
            }
        }
        return new ReferenceLogProbs(chosen, rejected);
    }

    public const string ReferenceFileName = "reference_logps.json";

    /// <summary>
    /// The reference log-probabilities, read from <paramref name="dir"/> when a file there was computed for the same
    /// reference model and the same token sequences, otherwise computed by <paramref name="compute"/> and written
    /// there (atomically) so a resumed run does not pay for them again.
    /// </summary>
    public static ReferenceLogProbs Cached(string dir, string referenceModelDir, IReadOnlyList<PreferencePair> pairs, Func<ReferenceLogProbs> compute)
    {
        string key = CacheKey(referenceModelDir, pairs);
        var path = Path.Combine(dir, ReferenceFileName);
        if (File.Exists(path))
        {
            try
            {
                var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
                if (json["key"]?.GetValue<string>() == key)
                {
                    var c = json["chosen"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
                    var r = json["rejected"]!.AsArray().Select(v => v!.GetValue<double>()).ToArray();
                    if (c.Length == pairs.Count && r.Length == pairs.Count) return new ReferenceLogProbs(c, r);
                }
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException)
            {
                // An unreadable cache is recomputed.
            }
        }
        var result = compute();
        Directory.CreateDirectory(dir);
        var doc = new JsonObject
        {
            ["key"] = key,
            ["reference_model"] = referenceModelDir,
            ["chosen"] = new JsonArray(result.Chosen.Select(v => (JsonNode)v).ToArray()),
            ["rejected"] = new JsonArray(result.Rejected.Select(v => (JsonNode)v).ToArray()),
        };
        AtomicFile.WriteAllText(path, doc.ToJsonString() + "\n");
        return result;
    }

    /// <summary>SHA-256 over the reference's weight files (name, size, modification time) and every pair's tokens and targets.</summary>
    static string CacheKey(string referenceModelDir, IReadOnlyList<PreferencePair> pairs)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string s) => hash.AppendData(System.Text.Encoding.UTF8.GetBytes(s + "\n"));
        foreach (var f in Directory.EnumerateFiles(referenceModelDir, "*.safetensors").Order(StringComparer.Ordinal))
        {
            var info = new FileInfo(f);
            Add(string.Create(CultureInfo.InvariantCulture, $"{info.Name} {info.Length} {info.LastWriteTimeUtc.Ticks}"));
        }
        foreach (var p in pairs)
            foreach (var e in new[] { p.Chosen, p.Rejected })
            {
                Add(string.Join(',', e.Tokens));
                Add(string.Join(',', e.Targets));
            }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
