using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Text;
using Attune.Training;

namespace Attune.Tests.Training;

[Collection("Simd")] // a finite-difference check: a kernel switched to another SIMD level mid-run moves its last bits
public class DpoTests
{
    static string Pairs(IEnumerable<string> subjects) => string.Join("\n", subjects.Select(s =>
        new JsonObject { ["prompt"] = $"Tell me about {s}.", ["chosen"] = $"Gladly! {s} is a fine subject.", ["rejected"] = "No." }.ToJsonString()));

    static readonly string[] Train = ["the sea", "music", "bread", "rivers", "cats", "trains", "paper", "gardens"];
    static readonly string[] HeldOut = ["mountains", "coffee", "bicycles"];

    [Fact]
    public void Dpo_raises_the_chosen_over_rejected_margin_on_held_out_pairs_and_caches_the_reference()
    {
        using var tmp = new TempDir();
        Attune.Modeling.ModelInitializer.Write(tmp["m"], Attune.Modeling.Presets.Find("tiny", null).Config, seed: 3, Attune.Tensors.DType.F32);
        File.WriteAllText(tmp["pairs.jsonl"], Pairs(Train) + "\n");
        File.WriteAllText(tmp["held.jsonl"], Pairs(HeldOut) + "\n");
        TrainerOptions Options(int steps) => new()
        {
            Steps = steps, BatchSize = 4, Seed = 42,
            Schedule = new LearningRateSchedule { Peak = 2e-3, Decay = LearningRateSchedule.Shape.Cosine, TotalSteps = steps },
        };
        var job = new DpoJob
        {
            Model = tmp["m"], Data = [tmp["pairs.jsonl"]], OutDir = tmp["run"], Options = Options(12), SaveEvery = 6, Dpo = new DpoOptions { Beta = 0.1 },
        };
        var steps = new List<StepMetrics>();
        var summary = job.Run(onStep: steps.Add);
        Assert.Equal((12, Train.Length), (summary.Steps, summary.Examples));
        Assert.Contains("rewards/margins", steps[^1].Extra.Keys);

        var metrics = File.ReadAllLines(tmp["run/metrics.jsonl"]).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(12, metrics.Count);
        Assert.True(metrics[^1]["rewards/margins"]!.GetValue<double>() > metrics[0]["rewards/margins"]!.GetValue<double>());
        Assert.Equal(1.0, metrics[^1]["rewards/accuracies"]!.GetValue<double>());
        Assert.True(File.Exists(tmp["run/" + PreferenceObjective.ReferenceFileName]));

        // Held-out pairs: the trained policy prefers the chosen style more than the reference does.
        var tokenizer = Tokenizer.Load(tmp["m"]);
        using var reference = Checkpoint.Open(tmp["m"]);
        var loader = new DpoData
        {
            Tokenizer = tokenizer, EosIds = Attune.Modeling.LanguageModel.EosIds(reference, tokenizer),
            EndToken = SftData.EndToken(reference, tokenizer)!.Value, MaxLength = 512, Format = Attune.Prompting.PromptMode.Chat,
        };
        var held = loader.Load(tmp["held.jsonl"]);
        var before = PreferenceObjective.LogProbs(TrainableModel.FromCheckpoint(reference), held, 4);
        using var trained = Checkpoint.Open(tmp["run"]);
        var after = PreferenceObjective.LogProbs(TrainableModel.FromCheckpoint(trained), held, 4);
        for (int i = 0; i < held.Count; i++)
        {
            double margin = (after.Chosen[i] - before.Chosen[i]) - (after.Rejected[i] - before.Rejected[i]);
            Assert.True(margin > 1.0, $"held-out pair {i}: implicit reward margin {margin:F3}");
        }

        // A resumed run reads the cached reference instead of recomputing it.
        File.SetLastWriteTimeUtc(tmp["run/" + PreferenceObjective.ReferenceFileName], new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        (job with { Options = Options(14), Resume = true }).Run();
        Assert.Equal(14, File.ReadAllLines(tmp["run/metrics.jsonl"]).Length);
        Assert.Equal(new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc), File.GetLastWriteTimeUtc(tmp["run/" + PreferenceObjective.ReferenceFileName]));
    }

    [Theory]
    [InlineData(DpoLoss.Sigmoid, 0.0)]
    [InlineData(DpoLoss.Sigmoid, 0.2)]
    [InlineData(DpoLoss.Ipo, 0.0)]
    [InlineData(DpoLoss.Hinge, 0.0)]
    public void Each_loss_gives_the_gradient_of_its_value(DpoLoss loss, double smoothing)
    {
        using var tmp = new TempDir();
        TinyModels.Write(tmp.Path, Attune.Tests.Modeling.TransformerTests.Qwen3, Attune.Tensors.DType.F32, seed: 2);
        using var ckpt = Checkpoint.Open(tmp.Path);
        var model = TrainableModel.FromCheckpoint(ckpt);
        int[] prompt = [5, 9, 2];
        TrainingExample Reply(params int[] reply)
        {
            var ids = prompt.Concat(reply).ToArray();
            var targets = Enumerable.Repeat(Attune.Modeling.CrossEntropy.Ignore, ids.Length - 1).ToArray();
            for (int j = prompt.Length; j < ids.Length; j++) targets[j - 1] = ids[j];
            return new TrainingExample(ids[..^1], targets);
        }
        var pairs = new List<PreferencePair> { new(Reply(7, 7, 1), Reply(3, 1)), new(Reply(4, 1), Reply(8, 8, 8, 1)) };
        // A reference that differs from the policy, so h ≠ 0 and the hinge is on its sloped side.
        var reference = new ReferenceLogProbs([-9.0, -7.5], [-6.0, -11.0]);
        var objective = new PreferenceObjective(pairs, reference, new DpoOptions { Loss = loss, Beta = 0.5, LabelSmoothing = smoothing });
        double Loss() { model.ZeroGradients(); return objective.Run(model, [0, 1], 2).Loss; }
        Loss();
        var analytic = model.Gradients.ToDictionary(g => g.Key, g => (float[])g.Value.Clone());
        var rng = new Random(1);
        foreach (var name in analytic.Keys.Where(n => n.Contains("proj") || n.Contains("embed")).OrderBy(_ => rng.Next()).Take(8))
        {
            var p = model.Parameters[name];
            int i = rng.Next(p.Length);
            float saved = p[i];
            const float h = 1e-2f;
            p[i] = saved + h; double up = Loss();
            p[i] = saved - h; double down = Loss();
            p[i] = saved;
            double numeric = (up - down) / (2 * h);
            Assert.True(Math.Abs(numeric - analytic[name][i]) <= 2e-3 + 0.05 * Math.Abs(numeric), $"{loss} {name}[{i}]: numeric {numeric:G5} vs analytic {analytic[name][i]:G5}");
        }
    }
}
