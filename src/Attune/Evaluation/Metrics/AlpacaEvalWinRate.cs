namespace Attune.Evaluation.Metrics;

/// <summary>
/// Win rates by AlpacaEval 2.0's definitions, from preferences in [1, 2] (1 = the baseline, output_1, wins; 2 = the
/// model, output_2; 1.5 or 0 a draw; null or anything outside [1, 2] is dropped), all in percent as the leaderboard
/// prints them:
/// <list type="bullet">
/// <item><c>win_rate</c>: the mean of (preference − 1), and <c>standard_error</c> its standard error of the mean;</item>
/// <item><c>n_wins</c> / <c>n_wins_base</c>: preferences above / below 1.5; <c>n_draws</c>: exactly 1.5 (or 0);</item>
/// <item><c>discrete_win_rate</c>: each preference rounded to 1 or 2 (half to even, 1.5 a draw), draws counting half;</item>
/// <item><c>length_controlled_winrate</c> (AlpacaEval's <c>length_controlled_minimal</c>): a logistic model of the
/// preference on tanh(Δ / sd(Δ)), Δ = characters of the baseline's output − characters of the model's, plus the
/// model term, fitted with an L1 penalty whose strength is chosen by 5-fold cross-validation on the fractional
/// log-loss, read off at Δ = 0.</item>
/// </list>
/// </summary>
/// <param name="LengthControlledMethod">AlpacaEval's name of the model read off: length_controlled_minimal, or length_controlled_noreg
/// when each instruction's difficulty is given (its length_controlled_v1 adds a regularisation towards annotations of
/// gamed baselines, which live on the Hugging Face Hub and are not read here).</param>
public sealed record AlpacaEvalWinRate(double WinRate, double StandardError, int Wins, int WinsBase, int Draws, int Total, double DiscreteWinRate,
    double LengthControlled, double LengthControlledStandardError, double LengthWeight, string LengthControlledMethod = "length_controlled_minimal")
{
    /// <summary>
    /// AlpacaEval's warning: the length-controlled rate moved further than 10 points or a quarter of the way to 0 or
    /// 100 from the raw one, a sign that the fit failed.
    /// </summary>
    public bool ExtremeChange =>
        LengthControlled < Math.Min(WinRate - WinRate / 4, WinRate - 10) || LengthControlled > Math.Max(WinRate + (100 - WinRate) / 4, WinRate + 10);

    /// <summary>The inverse regularisation strengths the cross-validation chooses from (scikit-learn's default grid, 10⁻⁴ to 10⁴).</summary>
    public static readonly double[] Cs = Enumerable.Range(0, 10).Select(i => Math.Pow(10, -4 + 8.0 * i / 9)).ToArray();

    public const int Folds = 5;

    /// <param name="preferences">Each annotation's preference (null when the judge gave none).</param>
    /// <param name="lengthDifferences">Characters (Unicode code points) of output_1, the baseline's, minus those of output_2, the model's.</param>
    /// <param name="difficulty">Each instruction's difficulty (AlpacaEval's instruction_difficulty): adds that term to the model (length_controlled_noreg).</param>
    public static AlpacaEvalWinRate Compute(IReadOnlyList<double?> preferences, IReadOnlyList<double> lengthDifferences, IReadOnlyList<double>? difficulty = null)
    {
        if (lengthDifferences.Count != preferences.Count) throw new ArgumentException("one length difference per preference");
        if (difficulty is not null && difficulty.Count != preferences.Count) throw new ArgumentException("one difficulty per preference");
        // The raw rates: draws (1.5, or 0 meaning a draw) are counted before invalid preferences are dropped.
        var p = preferences.Select(x => x == 0 ? 1.5 : x).ToList();
        int draws = p.Count(x => x == 1.5);
        var valid = p.Where(x => x is >= 1 and <= 2).Select(x => x!.Value - 1).ToList();
        double mean = valid.Count == 0 ? double.NaN : valid.Average();
        double sem = StandardErrorOfMean(valid);
        // The discrete rate: each preference rounded to 1 or 2 (1.5 is a draw).
        var rounded = p.Where(x => x is >= 1 and <= 2).Select(x => x == 1.5 ? 0.5 : Math.Round(x!.Value, MidpointRounding.ToEven) - 1).ToList();
        double discrete = rounded.Count == 0 ? double.NaN : rounded.Average() * 100;

        // Length control: every annotation's length difference counts in the scale (as AlpacaEval computes it before dropping).
        var delta = lengthDifferences;
        double sd = SampleStandardDeviation(delta);
        // The design: tanh(Δ / sd), the instruction's difficulty when given, and the model term (a constant 1); no intercept.
        var x = new List<double[]>();
        var y = new List<double>();
        for (int i = 0; i < p.Count; i++)
        {
            if (p[i] is not { } pref || double.IsNaN(pref)) continue;
            double length = Math.Tanh(sd > 0 ? delta[i] / sd : 0);
            x.Add(difficulty is null ? [length, 1] : [length, difficulty[i], 1]);
            y.Add(pref - 1);
        }
        double lc = double.NaN, lcSe = double.NaN, lengthWeight = double.NaN;
        if (y.Count >= Folds)
        {
            var w = FitCrossValidated(x, y);
            lengthWeight = w[0];
            // Read off at Δ = 0, every instruction: with the minimal model the prediction is one number (standard error 0, as AlpacaEval reports it).
            var predicted = Enumerable.Range(0, p.Count).Select(i => Logistic(difficulty is null ? w[1] : w[1] * difficulty[i] + w[2])).ToList();
            lc = predicted.Average() * 100;
            lcSe = difficulty is null ? 0 : StandardErrorOfMean(predicted) * 100;
        }
        return new AlpacaEvalWinRate(mean * 100, sem * 100, valid.Count(v => v > 0.5), valid.Count(v => v < 0.5), draws, valid.Count, discrete,
            lc, lcSe, lengthWeight, difficulty is null ? "length_controlled_minimal" : "length_controlled_noreg");
    }

    static double StandardErrorOfMean(IReadOnlyList<double> v)
    {
        if (v.Count < 2) return double.NaN;
        double m = v.Average();
        return Math.Sqrt(v.Sum(a => (a - m) * (a - m)) / (v.Count - 1) / v.Count);
    }

    static double SampleStandardDeviation(IReadOnlyList<double> v)
    {
        if (v.Count < 2) return 0;
        double m = v.Average();
        return Math.Sqrt(v.Sum(a => (a - m) * (a - m)) / (v.Count - 1));
    }

    static double Logistic(double z) => z >= 0 ? 1 / (1 + Math.Exp(-z)) : Math.Exp(z) / (1 + Math.Exp(z));

    /// <summary>
    /// The L1-penalised logistic fit with the penalty chosen as AlpacaEval chooses it: for each C of <see cref="Cs"/>,
    /// fit on four folds and score the held-out fold's mean log-loss against the fractional preferences (folds as
    /// <see cref="GroupFolds"/> deals them); the C with the best mean score is refitted on all.
    /// </summary>
    static double[] FitCrossValidated(IReadOnlyList<double[]> x, IReadOnlyList<double> y)
    {
        int n = y.Count;
        var folds = GroupFolds(n);
        // Each fold's rows, split once for every C.
        var splits = Enumerable.Range(0, Folds).Select(f =>
        {
            var train = Enumerable.Range(0, n).Where(i => folds[i] != f).ToList();
            return (TrainX: train.Select(i => x[i]).ToList(), TrainY: train.Select(i => y[i]).ToList(), Test: Enumerable.Range(0, n).Where(i => folds[i] == f).ToList());
        }).ToList();
        double bestScore = double.NegativeInfinity;
        double bestC = Cs[0];
        foreach (var c in Cs)
        {
            double total = 0;
            foreach (var (trainX, trainY, test) in splits)
            {
                var w = FitL1(trainX, trainY, c);
                double loss = 0;
                foreach (var i in test)
                {
                    double q = Math.Clamp(Logistic(Dot(w, x[i])), 1e-15, 1 - 1e-15);
                    loss -= y[i] * Math.Log(q) + (1 - y[i]) * Math.Log(1 - q);
                }
                total -= loss / test.Count;
            }
            double score = total / Folds;
            if (score > bestScore) { bestScore = score; bestC = c; }
        }
        return FitL1(x, y, bestC);
    }

    /// <summary>
    /// The fold of each annotation as scikit-learn's GroupKFold deals them when every group has the same size (two
    /// rows each here): groups in the reverse of the order numpy's default argsort (introsort, numpy ≤ 1.24 as Debian
    /// ships it) leaves equal counts in, each to the fold with the fewest rows so far, which goes round the folds.
    /// </summary>
    public static int[] GroupFolds(int n)
    {
        var order = ArgsortOfEqualKeys(n);
        var folds = new int[n];
        for (int position = 0; position < n; position++) folds[order[n - 1 - position]] = position % Folds;
        return folds;
    }

    /// <summary>
    /// The permutation numpy's quicksort-kind argsort returns for n equal keys: its introsort partitions (median of
    /// three, then the scan that swaps every pair it meets, since no key is less than another) down to runs of 16,
    /// which insertion sort leaves as they are.
    /// </summary>
    public static int[] ArgsortOfEqualKeys(int n)
    {
        var a = Enumerable.Range(0, n).ToArray();
        var stack = new Stack<(int L, int R)>();
        int l = 0, r = n - 1;
        while (true)
        {
            while (r - l > 16)
            {
                int m = l + ((r - l) >> 1);
                int j = r - 1;
                (a[m], a[j]) = (a[j], a[m]);
                int i = l;
                while (true)
                {
                    ++i;
                    --j;
                    if (i >= j) break;
                    (a[i], a[j]) = (a[j], a[i]);
                }
                (a[i], a[r - 1]) = (a[r - 1], a[i]);
                // The larger part waits on the stack; the smaller is partitioned next.
                if (i - l < r - i) { stack.Push((i + 1, r)); r = i - 1; }
                else { stack.Push((l, i - 1)); l = i + 1; }
            }
            if (stack.Count == 0) break;
            (l, r) = stack.Pop();
        }
        return a;
    }

    static double Dot(double[] w, double[] x)
    {
        double z = 0;
        for (int j = 0; j < w.Length; j++) z += w[j] * x[j];
        return z;
    }

    /// <summary>The two-feature fit (the length term and the model term) of <see cref="FitL1(IReadOnlyList{double[]}, IReadOnlyList{double}, double)"/>.</summary>
    public static (double W1, double W2) FitL1(IReadOnlyList<double> x, IReadOnlyList<double> y, double c)
    {
        var w = FitL1(x.Select(v => new[] { v, 1.0 }).ToList(), y, c);
        return (w[0], w[1]);
    }

    /// <summary>
    /// Minimises Σⱼ|wⱼ| + C·Σᵢ CE(yᵢ, σ(w·xᵢ)) — liblinear's L1-penalised logistic regression without an intercept, on
    /// the duplicated rows AlpacaEval builds (label 1 weighted yᵢ, label 0 weighted 1 − yᵢ), which is the cross-entropy
    /// against the fractional preference — by cyclic coordinate descent, each step an exact soft-thresholded Newton
    /// minimisation in one coordinate.
    /// </summary>
    public static double[] FitL1(IReadOnlyList<double[]> x, IReadOnlyList<double> y, double c)
    {
        int k = x.Count == 0 ? 0 : x[0].Length;
        var w = new double[k];
        var z = new double[x.Count]; // w·xᵢ, kept up to date
        for (int sweep = 0; sweep < 500; sweep++)
        {
            double change = 0;
            for (int j = 0; j < k; j++)
            {
                for (int inner = 0; inner < 50; inner++)
                {
                    double g = 0, h = 0;
                    for (int i = 0; i < y.Count; i++)
                    {
                        double q = Logistic(z[i]);
                        double xi = x[i][j];
                        g += c * (q - y[i]) * xi;
                        h += c * q * (1 - q) * xi * xi;
                    }
                    if (h <= 1e-300) break;
                    // Minimise g·d + h·d²/2 + |w + d| over d.
                    double target = w[j] - g / h;
                    double next = Math.Sign(target) * Math.Max(0, Math.Abs(target) - 1 / h);
                    if (w[j] == 0 && Math.Abs(g) <= 1) next = 0;
                    double step = next - w[j];
                    if (step == 0) break;
                    w[j] = next;
                    for (int i = 0; i < y.Count; i++) z[i] += step * x[i][j];
                    change = Math.Max(change, Math.Abs(step));
                    if (Math.Abs(step) < 1e-13) break;
                }
            }
            if (change < 1e-12) break;
        }
        return w;
    }
}
