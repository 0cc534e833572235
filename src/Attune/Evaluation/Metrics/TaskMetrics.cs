using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Attune.Evaluation.Metrics;

/// <summary>A metric as a task lists it (lm-evaluation-harness's metric_list entry).</summary>
public sealed record MetricSpec(string Name, bool IgnoreCase = false, bool IgnorePunctuation = false, IReadOnlyList<string>? RegexesToIgnore = null)
{
    /// <summary>A task's own metric function (a Python hook's equivalent): score of a prediction against one reference.</summary>
    public Func<string, string, double>? Function { get; init; }
    /// <summary>The aggregation the task names; null for the metric's own.</summary>
    public string? Aggregation { get; init; }
    /// <summary>Whether higher is better, when the task says; null for the metric's own.</summary>
    public bool? HigherIsBetter { get; init; }
}

/// <summary>The metrics a task can name, as lm-evaluation-harness names them.</summary>
public static class TaskMetrics
{
    /// <summary>Whether higher is better for a metric, as the harness's registry has it (perplexities and Brier score: lower).</summary>
    public static bool HigherIsBetter(string metric) =>
        metric is not ("perplexity" or "word_perplexity" or "byte_perplexity" or "bits_per_byte" or "brier_score");

    /// <summary>The harness's aggregation of a metric when the task names none: perplexities over the corpus, mcc and f1 of (gold, prediction) pairs, chrF of summed statistics, else the mean.</summary>
    public static string DefaultAggregation(string metric, bool corpus) => metric switch
    {
        "perplexity" => "perplexity",
        "word_perplexity" or "byte_perplexity" => "weighted_perplexity",
        "bits_per_byte" => "bits_per_byte",
        "mcc" => "mcc",
        "f1" when corpus => "f1",
        "chrf" => "chrf",
        "bleu" => "bleu",
        _ => "mean",
    };

    /// <summary>
    /// A corpus-level aggregation over the items' statistics: perplexity exp(−mean log-likelihood); weighted perplexity
    /// exp(−Σ log-likelihood / Σ weight) (words or bytes); bits per byte −Σ log-likelihood / Σ bytes / ln 2; Matthews
    /// correlation and binary F1 (positive label 1) of (gold, prediction) pairs, as scikit-learn computes them; chrF of
    /// summed statistics; otherwise the mean of the first value.
    /// </summary>
    public static Func<IReadOnlyList<double[]>, double> Aggregate(string aggregation, string metric) => aggregation switch
    {
        "perplexity" => s => Math.Exp(-s.Average(x => x[0])),
        "weighted_perplexity" => s => Math.Exp(-s.Sum(x => x[0]) / s.Sum(x => x[1])),
        "bits_per_byte" => s => -s.Sum(x => x[0]) / s.Sum(x => x[1]) / Math.Log(2),
        "mcc" or "matthews_corrcoef" => Matthews,
        "f1" => BinaryF1,
        "chrf" => s => ChrF.Score(Sum(s)),
        "bleu" => s => Bleu.Score(Sum(s)),
        _ => s => s.Average(x => x[0]),
    };

    static double[] Sum(IReadOnlyList<double[]> stats)
    {
        var sum = new double[stats[0].Length];
        foreach (var x in stats) for (int j = 0; j < sum.Length; j++) sum[j] += x[j];
        return sum;
    }

    /// <summary>Matthews correlation of (gold, prediction) pairs over any number of classes (scikit-learn's multiclass form).</summary>
    static double Matthews(IReadOnlyList<double[]> pairs)
    {
        var classes = pairs.SelectMany(p => p.Take(2)).Distinct().ToList();
        double n = pairs.Count, correct = pairs.Count(p => p[0] == p[1]);
        double sumTrue = 0, sumPred = 0, sumProduct = 0;
        foreach (var c in classes)
        {
            double t = pairs.Count(p => p[0] == c), q = pairs.Count(p => p[1] == c);
            sumTrue += t * t; sumPred += q * q; sumProduct += t * q;
        }
        double cov = correct * n - sumProduct;
        double denominator = Math.Sqrt((n * n - sumPred) * (n * n - sumTrue));
        return denominator == 0 ? 0 : cov / denominator;
    }

    /// <summary>Binary F1 of (gold, prediction) pairs with positive label 1, as the harness's f1 aggregation asks scikit-learn (0 when nothing is positive).</summary>
    static double BinaryF1(IReadOnlyList<double[]> pairs)
    {
        if (pairs.Any(p => p[0] is not (0 or 1) || p[1] is not (0 or 1)))
            throw new AttuneException(null, "f1", "on a multiple-choice task the harness's f1 is binary (two choices, gold 0 or 1); this task has more classes");
        double tp = pairs.Count(p => p[0] == 1 && p[1] == 1), fp = pairs.Count(p => p[0] == 0 && p[1] == 1), fn = pairs.Count(p => p[0] == 1 && p[1] == 0);
        return tp == 0 ? 0 : 2 * tp / (2 * tp + fp + fn);
    }

    /// <summary>The Brier score of one item: Σ (softmax(log-likelihoods)ᵢ − [i = gold])².</summary>
    public static double Brier(IReadOnlyList<double> logprobs, int gold)
    {
        double max = logprobs.Max(), total = logprobs.Sum(l => Math.Exp(l - max));
        return logprobs.Select((l, i) => Math.Exp(l - max) / total - (i == gold ? 1 : 0)).Sum(d => d * d);
    }

    /// <summary>The standard error of a mean as the harness reports it: the sample standard deviation (n − 1) over √n.</summary>
    public static double MeanStandardError(IReadOnlyList<double> values)
    {
        if (values.Count < 2) return double.NaN;
        double mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1) / values.Count);
    }

    /// <summary>How a choice's log-probability is normalised before the best is picked.</summary>
    public enum ChoiceNormalization { None, Characters, Bytes }

    /// <summary>The normalisation a multiple-choice metric uses: acc none, acc_norm per character (as the harness divides by len(choice)), acc_bytes per UTF-8 byte.</summary>
    public static ChoiceNormalization NormalizationOf(string metric) => metric switch
    {
        "acc_norm" => ChoiceNormalization.Characters,
        "acc_bytes" => ChoiceNormalization.Bytes,
        _ => ChoiceNormalization.None,
    };

    /// <summary>Index of the best choice by log-probability, raw or divided by the choice's length in characters (code points) or UTF-8 bytes.</summary>
    public static int BestChoice(IReadOnlyList<double> logprobs, IReadOnlyList<string> choices, ChoiceNormalization normalization)
    {
        int best = 0;
        double bestScore = double.NegativeInfinity;
        for (int i = 0; i < logprobs.Count; i++)
        {
            double score = normalization switch
            {
                ChoiceNormalization.Characters => logprobs[i] / Math.Max(1, Text.CodePoints.Count(choices[i])),
                ChoiceNormalization.Bytes => logprobs[i] / Math.Max(1, Encoding.UTF8.GetByteCount(choices[i])),
                _ => logprobs[i],
            };
            if (score > bestScore) { bestScore = score; best = i; }
        }
        return best;
    }

    /// <summary>Exact match with the harness's options: regexes removed, case and punctuation ignored (no trimming: a task strips with its filters).</summary>
    public static double ExactMatch(string prediction, string reference, MetricSpec spec)
    {
        string Prepare(string s)
        {
            foreach (var r in spec.RegexesToIgnore ?? []) s = Regex.Replace(s, r, "");
            if (spec.IgnoreCase) s = s.ToLowerInvariant();
            if (spec.IgnorePunctuation) s = new string(s.Where(c => !char.IsPunctuation(c)).ToArray());
            return s;
        }
        return Prepare(prediction) == Prepare(reference) ? 1 : 0;
    }

    static readonly Dictionary<string, HashSet<string>> Articles = new()
    {
        ["en"] = ["a", "an", "the"],
        ["fr"] = ["le", "la", "les", "l", "un", "une", "des", "du", "de", "d"],
        ["es"] = ["el", "la", "los", "las", "un", "una", "unos", "unas", "lo"],
    };

    /// <summary>
    /// SQuAD's normalisation, language aware: lower case, punctuation (apostrophes included) to spaces,
    /// articles of the language dropped, accents kept (they carry meaning in French and Spanish).
    /// </summary>
    public static List<string> NormalizedWords(string text, string? language)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var c in text.Normalize(NormalizationForm.FormC).ToLowerInvariant())
            sb.Append(char.IsPunctuation(c) || char.IsSymbol(c) ? ' ' : c);
        var articles = language is not null && Articles.TryGetValue(language, out var a) ? a : Articles["en"];
        return sb.ToString().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Where(w => !articles.Contains(w)).ToList();
    }

    /// <summary>Token-overlap F1 between prediction and reference (SQuAD).</summary>
    public static double F1(string prediction, string reference, string? language) =>
        TokenF1(NormalizedWords(prediction, language), NormalizedWords(reference, language));

    /// <summary>SQuAD's F1 of two token lists: 1 when both are empty, 0 when one is or none is shared, else 2PR/(P+R) over shared tokens counted with multiplicity.</summary>
    public static double TokenF1(IReadOnlyList<string> prediction, IReadOnlyList<string> reference)
    {
        if (prediction.Count == 0 || reference.Count == 0) return prediction.Count == reference.Count ? 1 : 0;
        var counts = reference.GroupBy(w => w).ToDictionary(g => g.Key, g => g.Count());
        int common = 0;
        foreach (var w in prediction)
            if (counts.TryGetValue(w, out var n) && n > 0) { common++; counts[w] = n - 1; }
        if (common == 0) return 0;
        double precision = (double)common / prediction.Count, recall = (double)common / reference.Count;
        return 2 * precision * recall / (precision + recall);
    }
}

/// <summary>
/// chrF (Popović 2015) as sacrebleu computes it by default: character n-grams of orders 1–6 with
/// whitespace removed, β = 2, per-order F-scores averaged over the orders that occur, statistics summed
/// over the corpus before the score is taken.
/// </summary>
public static class ChrF
{
    public const int Order = 6;
    const double Beta = 2;

    /// <summary>Per order: hypothesis n-grams, reference n-grams, matches (3 × <see cref="Order"/> numbers).</summary>
    public static double[] Statistics(string hypothesis, string reference)
    {
        var stats = new double[3 * Order];
        var hyp = Characters(hypothesis);
        var refc = Characters(reference);
        for (int n = 1; n <= Order; n++)
        {
            var h = NGrams(hyp, n);
            var r = NGrams(refc, n);
            double match = 0;
            foreach (var (gram, count) in h)
                if (r.TryGetValue(gram, out var rc)) match += Math.Min(count, rc);
            stats[3 * (n - 1)] = h.Values.Sum();
            stats[3 * (n - 1) + 1] = r.Values.Sum();
            stats[3 * (n - 1) + 2] = match;
        }
        return stats;
    }

    /// <summary>The score (0–100) of summed statistics.</summary>
    public static double Score(double[] stats)
    {
        const double eps = 1e-16;
        double factor = Beta * Beta, total = 0;
        int effective = 0;
        for (int n = 0; n < Order; n++)
        {
            double hyp = stats[3 * n], refc = stats[3 * n + 1], match = stats[3 * n + 2];
            if (hyp > 0 && refc > 0) effective++;
            double precision = hyp > 0 ? match / hyp : eps, recall = refc > 0 ? match / refc : eps;
            double denominator = factor * precision + recall;
            total += denominator > 0 ? (1 + factor) * precision * recall / denominator : eps;
        }
        return effective == 0 ? 0 : 100 * total / effective;
    }

    static string[] Characters(string s)
    {
        var list = new List<string>();
        var e = StringInfo.GetTextElementEnumerator(s);
        while (e.MoveNext())
        {
            var g = e.GetTextElement();
            if (!string.IsNullOrWhiteSpace(g)) list.Add(g);
        }
        return [.. list];
    }

    static Dictionary<string, int> NGrams(string[] chars, int n)
    {
        var d = new Dictionary<string, int>();
        for (int i = 0; i + n <= chars.Length; i++)
        {
            var g = string.Concat(chars.AsSpan(i, n));
            d[g] = d.GetValueOrDefault(g) + 1;
        }
        return d;
    }
}

/// <summary>
/// BLEU as sacrebleu's corpus_bleu computes it by default (the harness's bleu): the 13a tokenizer, n-grams of orders
/// 1–4 clipped by the reference's counts, statistics summed over the corpus, exponential smoothing of orders without a
/// match, and the brevity penalty; on a 0–100 scale.
/// </summary>
public static class Bleu
{
    const int Order = 4;

    static readonly (Regex Pattern, string Replacement)[] Rules =
    [
        (new Regex(@"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), " $1 "), // punctuation, except period and comma
        (new Regex(@"([^0-9])([\.,])"), "$1 $2 "), // period and comma, unless after a digit
        (new Regex(@"([\.,])([^0-9])"), " $1 $2"), // … unless before a digit
        (new Regex(@"([0-9])(-)"), "$1 $2 "), // a dash after a digit
    ];

    /// <summary>sacrebleu's 13a tokenizer (mteval-v13a): tokens split by white space.</summary>
    public static string[] Tokenize(string line)
    {
        line = line.Replace("<skipped>", "").Replace("-\n", "").Replace("\n", " ");
        if (line.Contains('&')) line = line.Replace("&quot;", "\"").Replace("&amp;", "&").Replace("&lt;", "<").Replace("&gt;", ">");
        line = $" {line} ";
        foreach (var (pattern, replacement) in Rules) line = pattern.Replace(line, replacement);
        return line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>One sentence's statistics: hypothesis length, reference length, then matches and totals of each order.</summary>
    public static double[] Statistics(string hypothesis, string reference)
    {
        var h = Tokenize(hypothesis);
        var r = Tokenize(reference);
        var stats = new double[2 + 2 * Order];
        stats[0] = h.Length;
        stats[1] = r.Length;
        for (int n = 1; n <= Order; n++)
        {
            var refCounts = Ngrams(r, n).GroupBy(g => g).ToDictionary(g => g.Key, g => g.Count());
            foreach (var group in Ngrams(h, n).GroupBy(g => g))
                stats[1 + n] += Math.Min(group.Count(), refCounts.GetValueOrDefault(group.Key));
            stats[1 + Order + n] = Math.Max(0, h.Length - n + 1);
        }
        return stats;
    }

    static IEnumerable<string> Ngrams(string[] tokens, int n) =>
        Enumerable.Range(0, Math.Max(0, tokens.Length - n + 1)).Select(i => string.Join('\u0001', tokens, i, n));

    /// <summary>BLEU of summed statistics.</summary>
    public static double Score(double[] stats)
    {
        double sysLen = stats[0], refLen = stats[1];
        var logs = new double[Order];
        double smooth = 1;
        for (int n = 1; n <= Order; n++)
        {
            double correct = stats[1 + n], total = stats[1 + Order + n];
            if (total == 0) break; // orders the hypothesis is too short for stay at precision 0
            double precision = correct == 0 ? 100 / ((smooth *= 2) * total) : 100 * correct / total;
            logs[n - 1] = Math.Log(precision);
        }
        for (int n = 1; n <= Order; n++)
            if (stats[1 + Order + n] == 0) logs[n - 1] = -9999999999; // sacrebleu's log of a zero precision
        double penalty = sysLen < refLen ? sysLen > 0 ? Math.Exp(1 - refLen / sysLen) : 0 : 1;
        return penalty * Math.Exp(logs.Sum() / Order);
    }
}
