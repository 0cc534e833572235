using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Attune.Bench;

/// <summary>
/// Load on <c>attune serve</c> over loopback: a SmolLM2-135M-shaped model in its own process, then
/// phases of concurrent clients of our own (each sends a completion, waits for it, sends the next),
/// each for a fixed time. Reports generated tokens/s, request latency p50/p99, failures, 429s and
/// the server's RSS sampled every second from /proc.
/// </summary>
static class ServeBench
{
    static readonly string[] Prompts =
    [
        "Write a short note to a neighbour about a parcel you received for them.",
        "Explique en quelques phrases pourquoi le ciel est bleu.",
        "Describe una mañana tranquila en un pueblo de montaña.",
        "List three things to check before a long bicycle ride.",
        "Raconte le début d'une histoire qui se passe dans une bibliothèque.",
        "¿Qué consejos darías a alguien que empieza a cocinar?",
        "Summarise the rules of chess for a child in a paragraph.",
        "Donne une recette simple pour une soupe de légumes.",
    ];

    sealed record Phase(string Name, int Clients, int Seconds);

    sealed class PhaseResult
    {
        public int Ok, TooMany, Failed;
        public long Tokens;
        public readonly List<double> Latencies = [];
        public double Seconds;
        public long RssStart, RssMax, RssEnd;
    }

    public static void Table(string root, int seconds, int clients)
    {
        var model = Path.Combine(root, "bench", "out", "smollm2-135m");
        if (!Directory.Exists(model))
            Attune.Modeling.ModelInitializer.Write(model, Attune.Modeling.Presets.Find("smollm2-135m", "llama").Config, 0, Attune.Tensors.DType.BF16);
        const int maxBatch = 8, queue = 4;
        var psi = new ProcessStartInfo("bash", [Path.Combine(root, "attune"), "serve", "--model", $"smol={model}", "--port", "0",
            "--max-batch", maxBatch.ToString(), "--queue", queue.ToString()]) { RedirectStandardError = true, RedirectStandardOutput = true, WorkingDirectory = root };
        using var server = Process.Start(psi)!;
        try
        {
            Uri? address = null;
            while (address is null && server.StandardError.ReadLine() is { } line)
                if (Regex.Match(line, @"on (http://\S+/v1)") is { Success: true } m) address = new Uri(m.Groups[1].Value + "/");
            if (address is null) throw new InvalidOperationException("attune serve did not start");
            _ = server.StandardError.ReadToEndAsync();
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = address, Timeout = TimeSpan.FromMinutes(5) };
            Run(http, new Phase("warm-up", 2, 5), server.Id); // JIT and first allocations, not reported

            var phases = new[]
            {
                new Phase("1 client", 1, seconds),
                new Phase($"{clients} clients", clients, seconds),
                new Phase($"{2 * clients + queue} clients (overload: 429 expected)", 2 * clients + queue, Math.Max(10, seconds / 3)),
                new Phase("1 client again", 1, Math.Max(10, seconds / 3)),
            };
            var results = phases.Select(p => (p, Run(http, p, server.Id))).ToList();
            Print(results, maxBatch, queue);
        }
        finally
        {
            if (!server.HasExited) { server.Kill(); server.WaitForExit(); }
        }
    }

    static PhaseResult Run(HttpClient http, Phase phase, int pid)
    {
        var result = new PhaseResult { RssStart = Rss(pid) };
        result.RssMax = result.RssStart;
        var clock = Stopwatch.StartNew();
        var end = TimeSpan.FromSeconds(phase.Seconds);
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                long rss = Rss(pid);
                lock (result) result.RssMax = Math.Max(result.RssMax, rss);
                try { await Task.Delay(1000, sampling.Token); } catch (TaskCanceledException) { }
            }
        });
        var workers = Enumerable.Range(0, phase.Clients).Select(c => Task.Run(async () =>
        {
            var rng = new Random(c);
            while (clock.Elapsed < end)
            {
                var body = new JsonObject
                {
                    ["model"] = "smol", ["prompt"] = Prompts[rng.Next(Prompts.Length)], ["max_tokens"] = 64,
                    ["temperature"] = 0.8, ["seed"] = rng.Next(),
                };
                var sent = Stopwatch.StartNew();
                try
                {
                    using var response = await http.PostAsync("completions", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
                    var text = await response.Content.ReadAsStringAsync();
                    if (response.StatusCode == HttpStatusCode.TooManyRequests)
                    {
                        lock (result) result.TooMany++;
                        await Task.Delay(response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1));
                        continue;
                    }
                    if (!response.IsSuccessStatusCode) { lock (result) result.Failed++; continue; }
                    int tokens = JsonNode.Parse(text)!["usage"]!["completion_tokens"]!.GetValue<int>();
                    lock (result) { result.Ok++; result.Tokens += tokens; result.Latencies.Add(sent.Elapsed.TotalSeconds); }
                }
                catch (Exception) { lock (result) result.Failed++; }
            }
        })).ToArray();
        Task.WaitAll(workers);
        result.Seconds = clock.Elapsed.TotalSeconds;
        sampling.Cancel();
        sampler.Wait();
        result.RssEnd = Rss(pid);
        result.RssMax = Math.Max(result.RssMax, result.RssEnd);
        return result;
    }

    /// <summary>Resident set of a process in bytes, from /proc (VmRSS).</summary>
    static long Rss(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:")) return long.Parse(Regex.Match(line, @"\d+").Value) * 1024;
        return 0;
    }

    static double Percentile(List<double> values, double p)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
    }

    static void Print(List<(Phase Phase, PhaseResult Result)> results, int maxBatch, int queue)
    {
        Console.WriteLine($"Model: SmolLM2-135M shape, BF16, random weights (bench/out/smollm2-135m); server: --max-batch {maxBatch} --queue {queue}; " +
            "each request: one of 8 en/fr/es prompts (14–20 tokens), max_tokens 64, temperature 0.8, its own seed.");
        Console.WriteLine($"Machine: {Environment.ProcessorCount} cores; clients and server share them.");
        Console.WriteLine();
        Console.WriteLine("| phase | seconds | requests ok | 429 | failed | generated tok/s | vs 1 client | p50 latency | p99 latency | server RSS start → max → end |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        double single = results[0].Result.Tokens / results[0].Result.Seconds;
        foreach (var (phase, r) in results)
        {
            double tps = r.Tokens / r.Seconds;
            Console.WriteLine($"| {phase.Name} | {r.Seconds:F0} | {r.Ok} | {r.TooMany} | {r.Failed} | {tps:F1} | {tps / single:F2}× | " +
                $"{Percentile(r.Latencies, 0.5):F2} s | {Percentile(r.Latencies, 0.99):F2} s | {r.RssStart / 1e6:F0} → {r.RssMax / 1e6:F0} → {r.RssEnd / 1e6:F0} MB |");
        }
    }
}
