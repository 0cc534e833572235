using System.CommandLine;
using Attune.Evaluation.Judging;
using Attune.Evaluation.Shift;
using Attune.Formats;
using Attune.Merging;
using Attune.Models;

namespace Attune.Cli.Commands;

/// <summary><c>attune shift</c>: the token distribution shift of an aligned model against its base, per language.</summary>
static class ShiftCommand
{
    public static Command Build()
    {
        var baseModel = new Option<string>("--base") { Description = "The base model (a folder, a .gguf file, a Hub id in the local cache)", Required = true };
        var aligned = new Option<string>("--aligned") { Description = "The aligned model: an instruct, SFT or DPO model, or BASE+INSTRUCT@λ (same tokenizer as the base)", Required = true };
        var set = new Option<string>("--set") { Description = "Instructions: builtin (30 per language) or JSONL/AlpacaEval JSON with instruction and lang", DefaultValueFactory = _ => "builtin" };
        var langs = new Option<string>("--langs") { Description = "Languages", DefaultValueFactory = _ => "en,fr,es" };
        var limit = new Option<int?>("--limit") { Description = "Only the first N instructions of each language" };
        var mode = new Option<string>("--mode") { Description = "How the aligned model is prompted: chat, urial or raw", DefaultValueFactory = _ => "chat" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most tokens per answer", DefaultValueFactory = _ => 128 };
        var output = new Option<string?>("--out") { Description = "Write the summary and every token's rank as JSON" };
        var cmd = new Command("shift", "Token distribution shift (URIAL): how often the aligned model's answer tokens are the base model's own first choice (unshifted), its 2nd–3rd (marginal), or lower (shifted)")
            { baseModel, aligned, set, langs, limit, mode, maxTokens, output };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var promptMode = Prompting.ChatPrompt.ParseMode(parse.GetValue(mode)!);
            if (parse.GetValue(maxTokens) < 1) throw new AttuneException(null, "--max-tokens", "must be ≥ 1");
            var languages = EvalCommand.ParseLanguages(parse.GetValue(langs)!);
            if (parse.GetValue(limit) is < 1) throw new AttuneException(null, "--limit", "must be ≥ 1");
            var all = Judge.Resolve(parse.GetValue(set)!);
            var items = languages.SelectMany(l => all.Where(i => i.Language == l).Take(parse.GetValue(limit) ?? int.MaxValue)).ToList();
            if (items.Count == 0) throw new AttuneException(parse.GetValue(set)!, "--langs", "no instruction of the set is in these languages");
            using var baseLm = ModelLoader.Load(ModelReference.Parse(parse.GetValue(baseModel)!, "--base"));
            using var alignedLm = ModelLoader.Load(ModelReference.Parse(parse.GetValue(aligned)!, "--aligned"));
            TokenShift.RequireSameTokenizer(baseLm, alignedLm);
            List<ShiftedAnswer> answers = [];
            CliProgress.Run(io, "shift", progress => answers = TokenShift.Measure(baseLm, alignedLm, items, promptMode, parse.GetValue(maxTokens),
                progress: (done, total) => progress.Report((double)done / total)));
            var summaries = languages.Where(l => answers.Any(a => a.Item.Language == l))
                .Select(l => TokenShift.Summarize(l, answers.Where(a => a.Item.Language == l).ToList(), baseLm.Tokenizer)).ToList();
            string F(Attune.Evaluation.Metrics.Estimate e) => $"{e.Value:P1} [{e.Low:P1}, {e.High:P1}]";
            io.Out.WriteLine("lang  answers  tokens  unshifted              marginal               shifted");
            foreach (var s in summaries)
                io.Out.WriteLine($"{s.Language,-4}  {s.Answers,7}  {s.Tokens,6}  {F(s.Unshifted),-21}  {F(s.Marginal),-21}  {F(s.Shifted)}");
            foreach (var s in summaries)
            {
                io.Out.WriteLine($"{s.Language}: shifted by position: " + string.Join(", ", s.Profile.Where(p => p.Tokens > 0).Select(p => $"{p.Positions} {p.Shifted:P0}")));
                if (s.TopShifted.Count > 0)
                    io.Out.WriteLine($"{s.Language}: most shifted tokens: " + string.Join(", ", s.TopShifted.Select(t => $"\"{t.Token.Replace("\n", "\\n")}\" ×{t.Count}")));
            }
            if (parse.GetValue(output) is { } outPath)
                AtomicFile.WriteAllText(outPath, TokenShift.ToJson(baseLm.Source, alignedLm.Source, parse.GetValue(mode)!, summaries, answers, baseLm.Tokenizer)
                    .ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            return Program.Success;
        });
        return cmd;
    }
}
