using System.Diagnostics;
using System.Text.Json.Nodes;
using Attune.Formats;
using Attune.Modeling;
using Attune.Tensors;
using Attune.Training;

namespace Attune.Bench;

/// <summary>
/// Training throughput: optimizer steps over random tokens (B sequences of T tokens per step) for a
/// ~30M-parameter Llama and a SmolLM2-135M-shaped one, full fine-tuning and LoRA; tokens/s and model
/// FLOPs utilisation = 6 · parameters · tokens/s ÷ the machine's fp32 FMA peak.
/// </summary>
public static class TrainBench
{
    /// <summary>8 layers of width 512 over an 8192-token vocabulary: 31.5M parameters.</summary>
    static JsonObject Shape30M()
    {
        var c = (JsonObject)Presets.Find("tiny", "llama").Config.DeepClone();
        c["hidden_size"] = 512; c["intermediate_size"] = 1536; c["num_hidden_layers"] = 8;
        c["num_attention_heads"] = 8; c["num_key_value_heads"] = 8; c["head_dim"] = 64; c["vocab_size"] = 8192;
        return c;
    }

    public static void Table(string root, double peakGflops, int steps)
    {
        var outDir = Path.Combine(root, "bench", "out");
        Directory.CreateDirectory(outDir);
        Console.WriteLine($"Machine: {Environment.ProcessorCount} cores; fp32 FMA peak {peakGflops:F0} GFLOP/s (bench/fma-peak.c); {steps} timed steps after one warm-up step; B = 4 sequences of T tokens per step.");
        Console.WriteLine();
        Console.WriteLine("| model | parameters | mode | T | trainable | step s | tokens/s | model GFLOP/s (6·N·tok/s) | MFU |");
        Console.WriteLine("|---|---:|---|---:|---:|---:|---:|---:|---:|");
        var loraAll = new LoraConfig { Rank = 16, Alpha = 32, TargetModules = [LoraConfig.AllLinear] };
        var smol = Presets.Find("smollm2-135m", "llama").Config;
        // The last row is llm.c's shape of step (B = 4, T = 64) for the comparison beside its GPT-2 124M trainer.
        foreach (var (name, config, lora, t) in new (string, JsonObject, LoraConfig?, int)[]
            { ("llama-30m", Shape30M(), null, 256), ("llama-30m", Shape30M(), loraAll, 256), ("smollm2-135m", smol, null, 256), ("smollm2-135m", smol, loraAll, 256), ("smollm2-135m", smol, null, 64) })
        {
            var dir = Path.Combine(outDir, "train-" + name);
            if (!Directory.Exists(dir)) ModelInitializer.Write(dir, config, 0, DType.F32);
            {
                using var ckpt = Checkpoint.Open(dir);
                var model = TrainableModel.FromCheckpoint(ckpt);
                if (lora is not null) model.AddLora(lora);
                long n = model.BaseParameterCount, trainable = model.Gradients.Values.Sum(g => (long)g.Length);
                var rng = new Rng(7);
                var data = Enumerable.Range(0, 64).Select(_ =>
                {
                    var tokens = Enumerable.Range(0, t + 1).Select(_ => rng.Next(ckpt.Config.VocabSize)).ToArray();
                    return new TrainingExample(tokens[..t], tokens[1..]);
                }).ToList();
                var trainer = new Trainer(model, data, new TrainerOptions { Steps = steps + 1, BatchSize = 4, Schedule = new LearningRateSchedule { Peak = 1e-4 } });
                trainer.TrainStep();
                var sw = Stopwatch.StartNew();
                long tokens = 0;
                for (int i = 0; i < steps; i++) tokens += trainer.TrainStep().Tokens;
                double seconds = sw.Elapsed.TotalSeconds, tps = tokens / seconds, gflops = 6.0 * n * tps / 1e9;
                Console.WriteLine($"| {name} | {n / 1e6:F1}M | {(lora is null ? "full" : $"LoRA r={lora.Rank} all-linear")} | {t} | {trainable / 1e6:F2}M | {seconds / steps:F2} | {tps:F0} | {gflops:F0} | {100 * gflops / peakGflops:F1}% |");
            }
        }
    }
}
