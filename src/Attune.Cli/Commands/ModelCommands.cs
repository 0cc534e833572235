using System.CommandLine;
using System.Text.Json.Nodes;
using Attune.Evaluation;
using Attune.Merging;
using Attune.Models;
using Attune.Modeling;
using Attune.Prompting;
using Attune.Tensors;
using Spectre.Console;

namespace Attune.Cli.Commands;

/// <summary><c>attune init</c>, <c>generate</c>, <c>score</c> and <c>perplexity</c>: thin shells over <see cref="LanguageModel"/>.</summary>
public static class ModelCommands
{
    /// <summary>What every <c>--model</c> accepts (parsed by <see cref="ModelReference.Parse"/>).</summary>
    internal const string ModelReferenceHelp =
        "A checkpoint folder, a .gguf file, a Hub id ORG/NAME[@revision] in the local Hugging Face cache, BASE+INSTRUCT@λ (interpolated in memory), or a served model http://host:port/v1#NAME";

    internal static Option<string> ModelOption() => new("--model")
    {
        Description = ModelReferenceHelp,
        Required = true,
    };

    internal static Option<string?> ApiKeyEnvOption() => new("--api-key-env")
    {
        Description = "For a served model: the environment variable holding its API key (none by default)",
    };

    public static Command Init()
    {
        var arch = new Option<string?>("--arch") { Description = $"Architecture: {string.Join("|", Presets.Archs)} (picks the variant of --preset tiny)" };
        var preset = new Option<string>("--preset") { Description = $"Shape: {string.Join("|", Presets.Names)}", DefaultValueFactory = _ => "tiny" };
        var seed = new Option<ulong>("--seed") { Description = "Random seed", DefaultValueFactory = _ => 0 };
        var dtype = new Option<string>("--dtype") { Description = "Weight dtype: f32|f16|bf16 (default: f32 for tiny, bf16 otherwise)" };
        var output = new Option<string>("--out") { Description = "Output folder (must not exist or be empty)", Required = true };
        var cmd = new Command("init", "Write a randomly initialised model as a checkpoint folder (config, safetensors, tokenizer)") { arch, preset, seed, dtype, output };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var p = Presets.Find(parse.GetValue(preset)!, parse.GetValue(arch));
            var dt = DTypes.ParseFloat(parse.GetValue(dtype) ?? (p.Name == "tiny" ? "f32" : "bf16"));
            var outDir = parse.GetValue(output)!;
            CliProgress.Run(io, $"init {p.Name} ({p.Arch})", progress =>
                ModelInitializer.Write(outDir, p.Config, parse.GetValue(seed), dt, progress));
            io.Out.WriteLine($"wrote {outDir}: {p.Name} ({p.Arch}), {dt.SafeTensorsName()}, seed {parse.GetValue(seed)}");
            return Program.Success;
        });
        return cmd;
    }

    public static Command Generate()
    {
        var model = ModelOption();
        var prompt = new Option<string>("--prompt") { Description = "The prompt text", Required = true };
        var mode = new Option<string>("--mode") { Description = "How the prompt is given: raw (as is), chat (the model's chat template) or urial (in-context alignment of a base model)", DefaultValueFactory = _ => "raw" };
        var lang = new Option<string>("--lang") { Description = "Language of the URIAL prompt: en|fr|es", DefaultValueFactory = _ => "en" };
        var shots = new Option<int>("--shots") { Description = "URIAL examples (0, 1, 3, 8, …)", DefaultValueFactory = _ => UrialPrompt.DefaultShots };
        var urialFile = new Option<string?>("--urial-prompt") { Description = "A URIAL prompt file ({preamble, examples}) instead of the built-in one" };
        var loopGuard = new Option<bool>("--stop-on-loop") { Description = "Stop when the output falls into a repetition loop (and say so on stderr)" };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most new tokens", DefaultValueFactory = _ => 128 };
        var temperature = new Option<float>("--temperature") { Description = "0 = greedy", DefaultValueFactory = _ => 0f };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling mass (1 = off)", DefaultValueFactory = _ => 1f };
        var topK = new Option<int>("--top-k") { Description = "Keep the k most likely tokens (0 = off)", DefaultValueFactory = _ => 0 };
        var minP = new Option<float>("--min-p") { Description = "Drop tokens below min-p × the best one (0 = off)", DefaultValueFactory = _ => 0f };
        var repetition = new Option<float>("--repetition-penalty") { Description = "Penalty on repeated tokens (1 = off)", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong>("--seed") { Description = "Sampling seed", DefaultValueFactory = _ => 0 };
        var stop = new Option<string[]>("--stop") { Description = "Stop string (repeatable)", AllowMultipleArgumentsPerToken = false };
        var keyEnv = ApiKeyEnvOption();
        var cmd = new Command("generate", "Continue a prompt, streaming the text to stdout")
            { model, prompt, mode, lang, shots, urialFile, maxTokens, temperature, topP, topK, minP, repetition, seed, stop, loopGuard, keyEnv };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var m = ChatPrompt.ParseMode(parse.GetValue(mode)!);
            var urial = LoadUrial(m, parse.GetValue(lang)!, parse.GetValue(urialFile));
            var options = new GenerationOptions
            {
                MaxNewTokens = parse.GetValue(maxTokens),
                StopStrings = [.. parse.GetValue(stop) ?? [], .. urial is null ? [] : UrialPrompt.StopStrings],
                RepetitionGuard = parse.GetValue(loopGuard) ? new RepetitionGuard() : null,
                Sampling = new SamplingOptions
                {
                    Temperature = parse.GetValue(temperature), TopP = parse.GetValue(topP), TopK = parse.GetValue(topK),
                    MinP = parse.GetValue(minP), RepetitionPenalty = parse.GetValue(repetition), Seed = parse.GetValue(seed),
                }.Validate(),
            };
            var reference = ModelReference.Parse(parse.GetValue(model)!);
            if (reference is ModelReference.Remote or ModelReference.LlamaCpp)
            {
                using var remote = ModelBackends.Open(reference, new RemoteOptions { ApiKeyEnv = parse.GetValue(keyEnv) });
                io.Out.WriteLine(ModelBackends.ReplyAsync(remote, m, urial, parse.GetValue(prompt)!, parse.GetValue(shots), options).GetAwaiter().GetResult());
                return Program.Success;
            }
            using var lm = ModelLoader.Load(reference);
            var ids = ChatPrompt.Encode(lm.Tokenizer, m, urial, [ChatMessage.User(parse.GetValue(prompt)!)], parse.GetValue(shots));
            void Show(string t) { io.Out.Write(t); io.Out.Flush(); }
            var cleaner = urial is null ? null : new UrialPrompt.StreamCleaner(Show);
            var result = lm.Generate(ids, options, cleaner is null ? Show : cleaner.Write);
            cleaner?.Finish();
            io.Out.WriteLine();
            if (result.Finish == FinishReason.Repetition) io.Error.WriteLine("note: stopped a repetition loop");
            return Program.Success;
        });
        return cmd;
    }

    /// <summary>The URIAL prompt for urial mode (built-in per language, or a file); checks --lang in every mode.</summary>
    static UrialPrompt? LoadUrial(PromptMode mode, string lang, string? file)
    {
        if (!UrialPrompt.Languages.Contains(lang))
            throw new AttuneException(null, "--lang", $"\"{lang}\" is not one of {string.Join(", ", UrialPrompt.Languages)}");
        if (mode != PromptMode.Urial) return null;
        return file is not null ? UrialPrompt.Load(file) : UrialPrompt.BuiltIn(lang);
    }

    /// <summary><c>attune chat</c>: a conversation with a model at the terminal, in chat or URIAL mode.</summary>
    public static Command Chat()
    {
        var model = ModelOption();
        var mode = new Option<string>("--mode") { Description = "chat (the model's chat template) or urial (base models)", DefaultValueFactory = _ => "chat" };
        var lang = new Option<string>("--lang") { Description = "Language of the URIAL prompt: en|fr|es", DefaultValueFactory = _ => "en" };
        var shots = new Option<int>("--shots") { Description = "URIAL examples", DefaultValueFactory = _ => UrialPrompt.DefaultShots };
        var maxTokens = new Option<int>("--max-tokens") { Description = "Most new tokens per reply", DefaultValueFactory = _ => 256 };
        var temperature = new Option<float>("--temperature") { Description = "0 = greedy", DefaultValueFactory = _ => 0.7f };
        var topP = new Option<float>("--top-p") { Description = "Nucleus sampling mass", DefaultValueFactory = _ => 0.9f };
        var seed = new Option<ulong>("--seed") { Description = "Sampling seed", DefaultValueFactory = _ => 0 };
        var cmd = new Command("chat", "Talk with a model at the terminal (/reset starts over, /exit or an empty line ends)")
            { model, mode, lang, shots, maxTokens, temperature, topP, seed };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var m = ChatPrompt.ParseMode(parse.GetValue(mode)!);
            if (m == PromptMode.Raw) throw new AttuneException(null, "--mode", "chat needs chat or urial");
            var urial = LoadUrial(m, parse.GetValue(lang)!, null);
            using var lm = ModelLoader.Load(ModelReference.Parse(parse.GetValue(model)!));
            var conversation = new List<ChatMessage>();
            var sampling = new SamplingOptions { Temperature = parse.GetValue(temperature), TopP = parse.GetValue(topP), Seed = parse.GetValue(seed) }.Validate();
            int turn = 0;
            while (true)
            {
                io.Out.Write("you> ");
                io.Out.Flush();
                var line = io.In.ReadLine();
                if (line is null || line.Trim().Length == 0 || line.Trim() == "/exit") break;
                if (line.Trim() == "/reset") { conversation.Clear(); io.Out.WriteLine("(conversation cleared)"); continue; }
                conversation.Add(ChatMessage.User(line));
                var ids = ChatPrompt.Encode(lm.Tokenizer, m, urial, conversation, parse.GetValue(shots));
                var options = new GenerationOptions
                {
                    MaxNewTokens = parse.GetValue(maxTokens),
                    Sampling = sampling with { Seed = sampling.Seed + (ulong)turn++ },
                    StopStrings = urial is null ? [] : UrialPrompt.StopStrings,
                    RepetitionGuard = new RepetitionGuard(),
                };
                io.Out.Write("model> ");
                void Show(string t) { io.Out.Write(t); io.Out.Flush(); }
                var cleaner = urial is null ? null : new UrialPrompt.StreamCleaner(Show);
                var reply = lm.Generate(ids, options, cleaner is null ? Show : cleaner.Write);
                cleaner?.Finish();
                io.Out.WriteLine();
                if (reply.Finish == FinishReason.Repetition) io.Out.WriteLine("(stopped a repetition loop)");
                conversation.Add(ChatMessage.Assistant(urial is null ? reply.Text.Trim() : UrialPrompt.CleanAnswer(reply.Text)));
            }
            return Program.Success;
        });
        return cmd;
    }

    public static Command Score()
    {
        var model = ModelOption();
        var keyEnv = ApiKeyEnvOption();
        var cmd = new Command("score", "Log-likelihood: JSONL {\"context\",\"continuation\"} on stdin → {\"logprob\",\"greedy\"}") { model, keyEnv };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            using var lm = ModelBackends.Open(ModelReference.Parse(parse.GetValue(model)!), new RemoteOptions { ApiKeyEnv = parse.GetValue(keyEnv) });
            Jsonl.Transform(io, r => ScoreRecords.Score(lm, r));
            return Program.Success;
        });
        return cmd;
    }

    public static Command Perplexity()
    {
        var model = ModelOption();
        var file = new Option<string>("--file") { Description = "A UTF-8 text file", Required = true };
        var context = new Option<int>("--context") { Description = "Window in tokens (default: min(context window, 1024)); windows overlap by half" };
        var cmd = new Command("perplexity", "Perplexity of a model over a text file") { model, file, context };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var path = parse.GetValue(file)!;
            if (!File.Exists(path)) throw new AttuneException(path, "file not found");
            using var lm = ModelLoader.Load(ModelReference.Parse(parse.GetValue(model)!));
            var r = lm.Perplexity(File.ReadAllText(path), parse.GetValue(context));
            Jsonl.Write(io.Out, new JsonObject { ["tokens"] = r.Tokens, ["nll"] = r.NegativeLogLikelihood, ["perplexity"] = r.Perplexity });
            return Program.Success;
        });
        return cmd;
    }
}

/// <summary>Long steps show a Spectre progress bar on a terminal and stay quiet when stderr is redirected.</summary>
static class CliProgress
{
    public static void Run(CliIO io, string label, Action<IProgress<double>> work)
    {
        bool terminal = ReferenceEquals(io.Error, Console.Error) && !Console.IsErrorRedirected;
        if (!terminal)
        {
            work(new Progress<double>(_ => { }));
            return;
        }
        AnsiConsole.Progress().AutoClear(true).Start(ctx =>
        {
            var task = ctx.AddTask(Markup.Escape(label), maxValue: 1.0);
            work(new SyncProgress(v => task.Value = v));
        });
    }

    /// <summary>Reports on the calling thread (System.Progress would post to the thread pool).</summary>
    sealed class SyncProgress(Action<double> report) : IProgress<double>
    {
        public void Report(double value) => report(value);
    }
}
