using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Attune.Models;
using Attune.Prompting;
using Attune.Tensors;
using Attune.Training;
using Spectre.Console;

namespace Attune.Cli.Commands;

/// <summary><c>attune train …</c>: in-process training on the CPU (llm.c style backward passes).</summary>
public static class TrainCommand
{
    public static Command Build() => new("train", "Train a checkpoint in-process on the CPU") { Pretrain(), Sft(), Dpo() };

    /// <summary>The options every trainer shares, and how they become a run.</summary>
    sealed class Common
    {
        public readonly Option<string> Model = new("--model") { Description = "The model to start from: a checkpoint folder or a Hub id in the local Hugging Face cache", Required = true };
        public readonly Option<string[]> Data = new("--data") { Description = "Training data (repeatable)", Required = true, AllowMultipleArgumentsPerToken = false };
        public readonly Option<string> Out = new("--out") { Description = "Output folder: the final model, checkpoint-N/ folders and metrics.jsonl", Required = true };
        public readonly Option<int> Steps = new("--steps") { Description = "Optimizer steps", DefaultValueFactory = _ => 100 };
        public readonly Option<double> Lr = new("--lr") { Description = "Peak learning rate", DefaultValueFactory = _ => 1e-3 };
        public readonly Option<int> BatchSize = new("--batch-size") { Description = "Sequences per micro-batch", DefaultValueFactory = _ => 4 };
        public readonly Option<int> GradAccum = new("--grad-accum") { Description = "Micro-batches per optimizer step", DefaultValueFactory = _ => 1 };
        public readonly Option<string> Schedule = new("--schedule") { Description = "Decay after warm-up: constant|linear|cosine", DefaultValueFactory = _ => "cosine" };
        public readonly Option<int> Warmup = new("--warmup") { Description = "Linear warm-up steps", DefaultValueFactory = _ => 0 };
        public readonly Option<double> WeightDecay = new("--weight-decay") { Description = "AdamW decoupled weight decay (not applied to norms and biases)", DefaultValueFactory = _ => 0.0 };
        public readonly Option<double> MaxGradNorm = new("--max-grad-norm") { Description = "Clip gradients to this global norm (0: off)", DefaultValueFactory = _ => 1.0 };
        public readonly Option<ulong> Seed = new("--seed") { Description = "Seed of the data order", DefaultValueFactory = _ => 42 };
        public readonly Option<int> SaveEvery = new("--save-every") { Description = "Write checkpoint-N/ every N steps (0: only the final model)", DefaultValueFactory = _ => 100 };
        public readonly Option<string?> DTypeOption = new("--dtype") { Description = "Saved weights f32|f16|bf16 (default: the starting checkpoint's)" };
        public readonly Option<bool> Resume = new("--resume") { Description = "Continue from the newest checkpoint-N/ in --out" };
        public readonly Option<bool> SkipBad = new("--skip-bad") { Description = "Skip bad data lines (invalid JSON, missing fields, too long, empty replies) and count them, instead of stopping at the first" };
        public readonly Option<int> LoraRank = new("--lora-rank") { Description = "Train LoRA adapters of this rank on a frozen base (0: train every weight); merged into the saved model" };
        public readonly Option<double> LoraAlpha = new("--lora-alpha") { Description = "LoRA alpha (scale = alpha / rank; default: 2 × rank)" };
        public readonly Option<string> LoraTargets = new("--lora-targets") { Description = "Comma-separated module patterns (q_proj, mlp\\..*) or all-linear", DefaultValueFactory = _ => "q_proj,v_proj" };

        public void AddTo(Command cmd)
        {
            foreach (var o in new Option[] { Model, Data, Out, Steps, Lr, BatchSize, GradAccum, Schedule, Warmup, WeightDecay, MaxGradNorm, Seed, SaveEvery, DTypeOption, Resume, SkipBad, LoraRank, LoraAlpha, LoraTargets })
                cmd.Add(o);
        }

        public TrainerOptions Options(ParseResult p)
        {
            int steps = p.GetValue(Steps);
            var shape = p.GetValue(Schedule)!.ToLowerInvariant() switch
            {
                "constant" => LearningRateSchedule.Shape.Constant,
                "linear" => LearningRateSchedule.Shape.Linear,
                "cosine" => LearningRateSchedule.Shape.Cosine,
                var s => throw new AttuneException(null, "--schedule", $"\"{s}\" is not one of constant, linear, cosine"),
            };
            return new TrainerOptions
            {
                Steps = steps,
                BatchSize = p.GetValue(BatchSize),
                GradientAccumulation = p.GetValue(GradAccum),
                Schedule = new LearningRateSchedule { Peak = p.GetValue(Lr), Decay = shape, WarmupSteps = p.GetValue(Warmup), TotalSteps = steps },
                WeightDecay = p.GetValue(WeightDecay),
                MaxGradNorm = p.GetValue(MaxGradNorm),
                Seed = p.GetValue(Seed),
            };
        }

        LoraConfig? Lora(ParseResult p)
        {
            int rank = p.GetValue(LoraRank);
            if (rank < 0) throw new AttuneException(null, "--lora-rank", "must be 0 (off) or more");
            if (rank == 0) return null;
            return new LoraConfig
            {
                Rank = rank,
                Alpha = p.GetResult(LoraAlpha) is null ? 2.0 * rank : p.GetValue(LoraAlpha),
                TargetModules = p.GetValue(LoraTargets)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
                Seed = p.GetValue(Seed),
            };
        }

        /// <summary>The job's shared fields from the command line (the kind fills in its own).</summary>
        public T Job<T>(ParseResult p, int blockSize) where T : TrainingJob, new() => new()
        {
            Model = ModelReference.Parse(p.GetValue(Model)!).CheckpointFolder("--model"),
            Data = p.GetValue(Data)!,
            OutDir = p.GetValue(Out)!,
            Options = Options(p),
            SaveEvery = p.GetValue(SaveEvery),
            SaveDType = p.GetValue(DTypeOption) is { } d ? DTypes.ParseFloat(d) : null,
            Lora = Lora(p),
            Resume = p.GetValue(Resume),
            SkipBad = p.GetValue(SkipBad),
            BlockSize = blockSize > 0 ? blockSize : null,
        };

        /// <summary>Runs the job, showing each step (a progress bar on a terminal), and prints the summary as JSON.</summary>
        public static int Run(TrainingJob job)
        {
            var io = CliIO.Get();
            var steps = job.Options.Steps;
            void Prepared(TrainingSummary s)
            {
                if (s.Skipped > 0) io.Error.WriteLine($"skipped {s.Skipped} bad data line(s); first: {string.Join("; ", s.FirstSkipped)}");
            }
            string Line(StepMetrics m) =>
                string.Create(CultureInfo.InvariantCulture, $"step {m.Step}/{steps}  loss {m.Loss:F4}  lr {m.LearningRate:G3}  grad norm {m.GradNorm:F3}  {m.Tokens / Math.Max(m.Seconds, 1e-9):F0} tok/s")
                + string.Concat(m.Extra.Select(e => string.Create(CultureInfo.InvariantCulture, $"  {e.Key[(e.Key.IndexOf('/') + 1)..]} {e.Value:F3}")));
            TrainingSummary? summary = null;
            if (ReferenceEquals(io.Error, Console.Error) && !Console.IsErrorRedirected)
            {
                // On a terminal: a progress bar on stderr whose label carries the step's figures (stdout keeps the JSON summary).
                var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
                console.Progress().AutoClear(false)
                    .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                    .Start(ctx =>
                    {
                        var task = ctx.AddTask("loading", maxValue: steps);
                        summary = job.Run(Prepared, m =>
                        {
                            task.Value = m.Step;
                            task.Description = Markup.Escape(Line(m));
                        });
                    });
            }
            else summary = job.Run(Prepared, m => io.Error.WriteLine(Line(m)));
            Jsonl.Write(io.Out, new JsonObject
            {
                ["out"] = summary!.OutDir,
                ["steps"] = summary.Steps,
                ["examples"] = summary.Examples,
                ["skipped"] = summary.Skipped,
                ["final_loss"] = summary.FinalLoss,
            });
            return Program.Success;
        }
    }

    static Command Pretrain()
    {
        var common = new Common();
        var blockSize = new Option<int>("--block-size") { Description = "Tokens per training sequence (default: min(context window, 256))" };
        var cmd = new Command("pretrain", "Next-token training on plain text files or JSONL {\"text\"}, packed into blocks") { blockSize };
        common.AddTo(cmd);
        cmd.SetAction(p => Common.Run(common.Job<PretrainJob>(p, p.GetValue(blockSize))));
        return cmd;
    }

    static Command Sft()
    {
        var common = new Common();
        var blockSize = new Option<int>("--block-size") { Description = "Longest example in tokens (default: min(context window, 512)); longer ones are an error" };
        var cmd = new Command("sft", "Supervised fine-tuning on JSONL {\"messages\"} (through the chat template) or {\"prompt\",\"completion\"}; loss on assistant tokens and EOS only") { blockSize };
        common.AddTo(cmd);
        cmd.SetAction(p => Common.Run(common.Job<SftJob>(p, p.GetValue(blockSize))));
        return cmd;
    }

    static Command Dpo()
    {
        var common = new Common();
        var blockSize = new Option<int>("--block-size") { Description = "Longest prompt + reply in tokens (default: min(context window, 512)); longer ones are an error" };
        var refModel = new Option<string?>("--ref-model") { Description = "The frozen reference (default: --model)" };
        var beta = new Option<double>("--beta") { Description = "DPO beta", DefaultValueFactory = _ => 0.1 };
        var loss = new Option<string>("--loss") { Description = "sigmoid|ipo|hinge", DefaultValueFactory = _ => "sigmoid" };
        var smoothing = new Option<double>("--label-smoothing") { Description = "Probability of a flipped label (sigmoid loss)", DefaultValueFactory = _ => 0.0 };
        var format = new Option<string?>("--format") { Description = "How prompts are written: chat (the chat template) | urial (in-context alignment, for base models) | raw (default: chat when the model has a template, else urial)" };
        var lang = new Option<string>("--lang") { Description = "URIAL prompt language: en|fr|es", DefaultValueFactory = _ => "en" };
        var urialFile = new Option<string?>("--urial-prompt") { Description = "A URIAL prompt file replacing the built-in one" };
        var shots = new Option<int>("--urial-shots") { Description = "URIAL examples before the query", DefaultValueFactory = _ => 3 };
        var cmd = new Command("dpo", "Direct preference optimisation on JSONL {\"prompt\"|\"messages\", \"chosen\", \"rejected\"} against a frozen reference whose log-probabilities are computed once and cached in --out")
            { blockSize, refModel, beta, loss, smoothing, format, lang, urialFile, shots };
        common.AddTo(cmd);
        cmd.SetAction(p => Common.Run(common.Job<DpoJob>(p, p.GetValue(blockSize)) with
        {
            Dpo = new DpoOptions
            {
                Beta = p.GetValue(beta),
                LabelSmoothing = p.GetValue(smoothing),
                Loss = p.GetValue(loss)!.ToLowerInvariant() switch
                {
                    "sigmoid" => DpoLoss.Sigmoid,
                    "ipo" => DpoLoss.Ipo,
                    "hinge" => DpoLoss.Hinge,
                    var s => throw new AttuneException(null, "--loss", $"\"{s}\" is not one of sigmoid, ipo, hinge"),
                },
            },
            ReferenceModel = p.GetValue(refModel) is { } r ? ModelReference.Parse(r, "--ref-model").CheckpointFolder("--ref-model") : null,
            Format = p.GetValue(format) is { } f ? ChatPrompt.ParseMode(f.ToLowerInvariant(), "--format") : null,
            Urial = p.GetValue(urialFile) is { } file ? UrialPrompt.Load(file) : null,
            UrialLanguage = p.GetValue(lang)!,
            UrialShots = p.GetValue(shots),
        }));
        return cmd;
    }
}
