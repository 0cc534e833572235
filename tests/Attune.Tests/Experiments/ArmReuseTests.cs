using Attune.Experiments;
using Attune.Merging;
using Attune.Modeling;
using Attune.Models;
using Attune.Tensors;
using Attune.Tests.Cli;

namespace Attune.Tests.Experiments;

/// <summary>
/// Arms that answer alike compute each answer once: M(1) is the instruct model (loaded as such, with its identity; the
/// sweep already drops the instruct arm when λ = 1 is swept), and M(0) scores as the base does when their tensors and
/// tokenizer are the same (its log-likelihoods shared with the URIAL arm, which is the base, through the cache every
/// sweep run keeps).
/// </summary>
[Collection("Simd")]
public class ArmReuseTests
{
    [Fact]
    public void Lambda_one_is_the_instruct_model_and_lambda_zero_scores_as_the_base()
    {
        using var tmp = new TempDir();
        ModelInitializer.Write(tmp["base"], Presets.Find("tiny", "llama").Config, seed: 1, DType.F32);
        ModelInitializer.Write(tmp["instruct"], Presets.Find("tiny", "llama").Config, seed: 2, DType.F32);
        var b = ModelReference.Parse(tmp["base"]);
        var i = ModelReference.Parse(tmp["instruct"]);
        Assert.Equal(i, ModelLoader.Equivalent(new ModelReference.Interpolation(b, i, Lambda.Parse("1"))));
        Assert.IsType<ModelReference.Interpolation>(ModelLoader.Equivalent(new ModelReference.Interpolation(b, i, Lambda.Parse("0.5"))));
        Assert.Equal(b, ModelLoader.ScoringEquivalent(new ModelReference.Interpolation(b, i, Lambda.Parse("0"))));
        Assert.Null(ModelLoader.ScoringEquivalent(new ModelReference.Interpolation(b, i, Lambda.Parse("1"))));

        var (code, _, err) = CliRunner.Run("", "sweep", "--base", tmp["base"], "--instruct", tmp["instruct"], "--lambdas", "0,1", "--langs", "es",
            "--icl", "builtin:nli", "--icl-limit", "4", "--if", "builtin", "--if-limit", "2", "--max-tokens", "8", "--store", tmp["s.db"]);
        Assert.True(code == 0, err);
        var reused = int.Parse(System.Text.RegularExpressions.Regex.Match(err, @"(\d+) answers reused").Groups[1].Value);
        using var store = new ResultsStore(tmp["s.db"]);
        var cells = store.Cells(withItems: true);
        static IEnumerable<string?> Answers(CellResult c) => c.Items.Select(x => x["prediction"]?.ToJsonString() ?? x["response"]?.ToJsonString());
        CellResult Cell(string arm, string suite) => cells.Single(c => c.Arm == arm && c.Suite == suite);
        // λ = 1 ran as the instruct model itself (no merge built), and says so.
        Assert.All(cells.Where(c => c.Arm == "lambda-1.00"), c => Assert.Equal(i.LocalIdentity(), c.ModelIdentity));
        // The URIAL arm (the base) scored its few-shot items from λ = 0's answers, or λ = 0 from its.
        Assert.Equal(Answers(Cell("base-urial", "icl")), Answers(Cell("lambda-0.00", "icl")));
        Assert.True(reused >= Cell("lambda-0.00", "icl").Items.Count, $"{reused} answers reused\n{err}");
    }
}
