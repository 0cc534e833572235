using Attune.Evaluation;
using Attune.Modeling;
using Attune.Prompting;
using Attune.Tests.Modeling;

namespace Attune.Tests.Evaluation;

[Collection("Simd")]
public class WaistTests(LanguageModelTests.TinyModelFixture tiny) : IClassFixture<LanguageModelTests.TinyModelFixture>
{
    static readonly string Shots = "Q: 1 + 1 = ? A: 2\n\nQ: 2 + 3 = ? A: 5\n\nQ: 4 + 4 = ? A: 8\n\n";

    static List<LoglikelihoodRequest> MultipleChoice() =>
        [.. from q in new[] { "Q: 3 + 4 = ? A:", "Q: 6 + 1 = ? A:", "Q: 2 + 2 = ? A:" }
            from c in new[] { " 7", " 8", " 4", " 12" }
            select new LoglikelihoodRequest(Shots + q, c)];

    [Fact]
    public void Scoring_with_shared_prefixes_equals_scoring_each_pair_alone()
    {
        using var lm = LanguageModel.Load(tiny.Path);
        var pairs = MultipleChoice().Select(r => lm.SplitForScoring(r.Context, r.Continuation)).ToList();
        pairs.Add(([], lm.Tokenizer.Encode("Hola", addSpecialTokens: false))); // empty context: scored after BOS
        var reused = lm.ScoreMany(pairs, reusePrefixes: true);
        var alone = lm.ScoreMany(pairs, reusePrefixes: false);
        for (int i = 0; i < pairs.Count; i++)
        {
            Assert.Equal(alone[i].LogProb, reused[i].LogProb, 1e-4); // the same sums; f32 rounding differs with the rows per pass
            Assert.Equal(alone[i].Tokens, reused[i].Tokens);
            Assert.Equal(alone[i].IsGreedy, reused[i].IsGreedy);
        }
        var direct = lm.Score(Shots + "Q: 3 + 4 = ? A:", " 7");
        Assert.Equal(direct.LogProb, reused[0].LogProb, 1e-4);
    }

    [Theory]
    [InlineData(2048)]
    [InlineData(40)]
    [InlineData(1)]
    public void Batched_scoring_equals_scoring_each_pair_alone_across_tasks_and_batches(int rowsPerPass)
    {
        // Two tasks with their own fixed shots, an item with per-item shots, choices of one to several tokens and
        // different counts per question, a repeated pair, an empty context: in one batch, in several, one per batch.
        using var lm = LanguageModel.Load(tiny.Path);
        const string other = "Word: hot. Opposite: cold\n\nWord: up. Opposite: down\n\n";
        var requests = MultipleChoice();
        foreach (var w in new[] { "big", "fast", "early", "light" })
            foreach (var c in new[] { " small", " slow and steady", " late" })
                requests.Add(new LoglikelihoodRequest(other + $"Word: {w}. Opposite:", c));
        requests.Add(new LoglikelihoodRequest("Q: 9 + 9 = ? A: 18\n\nQ: 5 + 5 = ? A:", " 10"));
        requests.Add(new LoglikelihoodRequest("Q: 9 + 9 = ? A: 18\n\nQ: 5 + 5 = ? A:", " ten, I think"));
        requests.Add(requests[3]);
        var pairs = requests.Select(r => lm.SplitForScoring(r.Context, r.Continuation)).ToList();
        pairs.Add(([], lm.Tokenizer.Encode("Hola", addSpecialTokens: false)));
        lm.ScoringRowsPerPass = rowsPerPass;
        var heard = new List<int>();
        var reused = lm.ScoreMany(pairs, reusePrefixes: true, progress: heard.Add);
        var alone = lm.ScoreMany(pairs, reusePrefixes: false);
        for (int i = 0; i < pairs.Count; i++)
        {
            Assert.Equal(alone[i].LogProb, reused[i].LogProb, 1e-4);
            Assert.Equal(alone[i].Tokens, reused[i].Tokens);
            Assert.Equal(alone[i].IsGreedy, reused[i].IsGreedy);
        }
        Assert.Equal(pairs.Count, heard[^1]);
        // Nine distinct contexts: one batch each at one row per pass; at 2048 rows, at most one batch per task's shots.
        int batches = heard.Count;
        Assert.True(rowsPerPass switch { 1 => batches == 9, 2048 => batches <= 3, _ => batches > 3 && batches < 9 }, $"{batches} batches");
    }

    /// <summary>A backend that counts what it is asked and can fail on demand.</summary>
    sealed class CountingBackend : IModelBackend
    {
        public int Asked;
        public int FailAfter = int.MaxValue;
        public string Identity => "counting";
        public Task<ScoreResult> LoglikelihoodAsync(string context, string continuation, CancellationToken cancel = default)
        {
            if (Interlocked.Increment(ref Asked) > FailAfter) throw new AttuneException(null, "backend down");
            return Task.FromResult(new ScoreResult(-continuation.Length, continuation.Length == 2, continuation.Length));
        }
        public Task<GeneratedText> CompleteAsync(string prompt, GenerationOptions options, CancellationToken cancel = default)
        {
            Interlocked.Increment(ref Asked);
            return Task.FromResult(new GeneratedText(prompt.ToUpperInvariant(), FinishReason.Stop, 1));
        }
        public Task<GeneratedText> ChatAsync(IReadOnlyList<ChatMessage> conversation, GenerationOptions options, CancellationToken cancel = default) =>
            CompleteAsync(conversation[^1].Content, options, cancel);
        public void Dispose() { }
    }

    [Fact]
    public async Task Repeated_and_cached_requests_are_not_asked_again()
    {
        using var tmp = new TempDir();
        var backend = new CountingBackend();
        var requests = MultipleChoice();
        requests.AddRange(MultipleChoice()); // each twice
        using (var cache = new ResponseCache(tmp["cache.db"]))
        {
            var runner = new RequestRunner(backend, cache);
            var answers = await runner.LoglikelihoodAsync(requests);
            Assert.Equal(12, backend.Asked);
            Assert.Equal(12, runner.Duplicates);
            Assert.Equal(requests.Select(r => -(double)r.Continuation.Length), answers.Select(a => a.LogProb));
            var generated = await runner.GenerateAsync([GenerateRequest.Raw("abc", new GenerationOptions()), GenerateRequest.Raw("abc", new GenerationOptions { MaxNewTokens = 3 })]);
            Assert.Equal(["ABC", "ABC"], generated.Select(g => g.Text));
            Assert.Equal(14, backend.Asked); // different options: a different request
        }
        using (var cache = new ResponseCache(tmp["cache.db"]))
        {
            var runner = new RequestRunner(backend, cache);
            var again = await runner.LoglikelihoodAsync(requests);
            Assert.Equal(14, backend.Asked);
            Assert.Equal(12, runner.CacheHits);
            Assert.Equal(requests.Select(r => r.Continuation.Length == 2), again.Select(a => a.IsGreedy));
            // Another model's answers are its own.
            var other = new RequestRunner(new LocalBackendStandIn(backend), cache);
            await other.LoglikelihoodAsync(requests);
            Assert.Equal(26, backend.Asked);
        }
    }

    /// <summary>The same answers under another identity.</summary>
    sealed class LocalBackendStandIn(CountingBackend inner) : IModelBackend
    {
        public string Identity => "another model";
        public Task<ScoreResult> LoglikelihoodAsync(string c, string x, CancellationToken t = default) => inner.LoglikelihoodAsync(c, x, t);
        public Task<GeneratedText> CompleteAsync(string p, GenerationOptions o, CancellationToken t = default) => inner.CompleteAsync(p, o, t);
        public Task<GeneratedText> ChatAsync(IReadOnlyList<ChatMessage> m, GenerationOptions o, CancellationToken t = default) => inner.ChatAsync(m, o, t);
        public void Dispose() { }
    }

    [Fact]
    public async Task A_run_killed_mid_way_keeps_its_finished_chunks()
    {
        using var tmp = new TempDir();
        var requests = Enumerable.Range(0, 10).Select(i => new LoglikelihoodRequest($"context {i}", $" answer {i}")).ToList();
        var backend = new CountingBackend { FailAfter = 6 };
        using var cache = new ResponseCache(tmp["cache.db"]);
        var runner = new RequestRunner(backend, cache) { ChunkSize = 4 };
        await Assert.ThrowsAsync<AttuneException>(() => runner.LoglikelihoodAsync(requests));
        Assert.Equal(4, cache.Count()); // the first chunk; the second failed part-way and stored nothing
        backend.FailAfter = int.MaxValue;
        backend.Asked = 0;
        var resumed = new RequestRunner(backend, cache) { ChunkSize = 4 };
        await resumed.LoglikelihoodAsync(requests);
        Assert.Equal(6, backend.Asked);
        Assert.Equal(4, resumed.CacheHits);
    }

    [Fact]
    public async Task Batched_local_generation_of_one_at_a_time_equals_Generate()
    {
        using var lm = LanguageModel.Load(tiny.Path);
        using var reference = LanguageModel.Load(tiny.Path);
        using var backend = new LocalBackend(lm) { MaxBatch = 1 };
        var options = new GenerationOptions { MaxNewTokens = 10, StopStrings = ["\n"] };
        var requests = new[] { "Le chat", "El perro", "The bird" }.Select(p => GenerateRequest.Raw(p, options)).ToList();
        var results = await backend.GenerateManyAsync(requests);
        for (int i = 0; i < requests.Count; i++)
            Assert.Equal(reference.Generate(reference.Tokenizer.Encode(requests[i].Prompt!), options).Text, results[i].Text);
        // Batched eight at a time: every request answered, each within its budget.
        using var batched = new LocalBackend(LanguageModel.Load(tiny.Path)) { MaxBatch = 8 };
        var many = await batched.GenerateManyAsync(Enumerable.Repeat(requests, 4).SelectMany(r => r).ToList());
        Assert.Equal(12, many.Count);
        Assert.All(many, g => Assert.InRange(g.CompletionTokens, 0, 10));
    }

    [Fact]
    public void The_default_generation_width_is_the_widest_whose_caches_fit_the_budget()
    {
        // Small weights, wide KV heads and a long window: 32 KiB of cache per token, so the budget binds.
        using var tmp = new TempDir();
        var wide = (System.Text.Json.Nodes.JsonObject)Presets.Find("tiny", "llama").Config.DeepClone(); // the preset is shared
        (wide["num_hidden_layers"], wide["num_attention_heads"], wide["num_key_value_heads"], wide["head_dim"], wide["max_position_embeddings"]) = (4, 4, 4, 256, 32768);
        ModelInitializer.Write(tmp["wide"], wide, seed: 1, Attune.Tensors.DType.F32);
        using var backend = new LocalBackend(LanguageModel.Load(tmp["wide"]));
        var c = backend.Model.Config;
        long perToken = 2L * c.NumLayers * c.NumKvHeads * c.HeadDim * sizeof(float);
        var prompt = new int[10];
        var widths = new List<int>();
        foreach (int budget in new[] { 1, 500, 2000, 8000, 60000 })
        {
            var request = GenerateRequest.Raw("x", new GenerationOptions { MaxNewTokens = budget });
            int width = backend.BatchWidth([prompt, new int[3]], [request, request]);
            long longest = Math.Min(c.MaxPositionEmbeddings, prompt.Length + budget);
            Assert.InRange(width, 8, LocalBackend.WidestBatch);
            // Either the caches fit and one more would not (or the widest is reached), or the floor of 8 holds.
            Assert.True(width == 8 || width * perToken * longest <= LocalBackend.KvBudgetBytes);
            Assert.True(width == LocalBackend.WidestBatch || (width + 1) * perToken * longest > LocalBackend.KvBudgetBytes);
            widths.Add(width);
        }
        Assert.Equal([64, 64, 32, 8, 8], widths); // the widest, the budget's, and the floor
        using var fixedWidth = new LocalBackend(LanguageModel.Load(tiny.Path)) { MaxBatch = 3 };
        Assert.Equal(3, fixedWidth.BatchWidth([prompt], [GenerateRequest.Raw("x", new GenerationOptions())]));
    }
}
