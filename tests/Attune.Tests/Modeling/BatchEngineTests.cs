using System.Threading.Channels;
using Attune.Modeling;
using Attune.Tensors;

namespace Attune.Tests.Modeling;

[Collection("Simd")] // compares batched results with in-process ones bit for bit
public class BatchEngineTests : IClassFixture<LanguageModelTests.TinyModelFixture>
{
    readonly LanguageModelTests.TinyModelFixture _tiny;
    public BatchEngineTests(LanguageModelTests.TinyModelFixture tiny) => _tiny = tiny;

    static async Task<List<CompletionEvent>> All(ChannelReader<CompletionEvent> events)
    {
        var list = new List<CompletionEvent>();
        await foreach (var e in events.ReadAllAsync()) list.Add(e);
        return list;
    }

    static CompletionRequest Request(int[] ids, int maxTokens, float temperature = 0, ulong seed = 0) => new()
    {
        PromptIds = ids,
        Options = new GenerationOptions { MaxNewTokens = maxTokens, Sampling = new SamplingOptions { Temperature = temperature, Seed = seed } },
    };

    [Fact]
    public async Task Requests_run_one_at_a_time_give_what_Generate_gives()
    {
        using var local = LanguageModel.Load(_tiny.Path);
        using var served = LanguageModel.Load(_tiny.Path);
        using var engine = new BatchEngine(served, maxBatch: 1);
        foreach (var (prompt, temperature) in new[] { ("Le chat", 0f), ("El perro", 0.9f), ("The bird", 1.3f) })
        {
            var ids = local.Tokenizer.Encode(prompt);
            Assert.Equal(SubmitResult.Accepted, engine.Submit(Request(ids, 16, temperature, 7), default, out var events));
            var got = await All(events);
            var expected = local.Generate(ids, Request(ids, 16, temperature, 7).Options);
            var finished = Assert.IsType<CompletionFinished>(got[^1]);
            Assert.Equal(expected.Text, finished.Text);
            Assert.Equal(expected.Tokens, got.OfType<TokenGenerated>().Where(t => t.Id >= 0 && !t.IsStop).Select(t => t.Id).ToList());
            Assert.Equal(expected.Text, string.Concat(got.OfType<TokenGenerated>().Select(t => t.Text)));
        }
    }

    [Fact]
    public async Task A_finished_sequence_frees_its_slot_before_its_client_hears_of_it()
    {
        using var lm = LanguageModel.Load(_tiny.Path);
        using var engine = new BatchEngine(lm, maxBatch: 2, queueCapacity: 0);
        var ids = lm.Tokenizer.Encode("Same prompt");
        engine.Submit(Request(ids, 6), default, out var a);
        engine.Submit(Request(ids, 6), default, out var b);
        await Task.WhenAll(All(a), All(b));
        // Both ended in the same step; the slots are free the moment the events are out.
        Assert.Equal(0, engine.Active);
        Assert.Equal(SubmitResult.Accepted, engine.Submit(Request(ids, 1), default, out var c));
        Assert.Equal(SubmitResult.Accepted, engine.Submit(Request(ids, 1), default, out var d));
        await Task.WhenAll(All(c), All(d));
    }

    [Fact]
    public async Task A_stop_token_is_reported_with_its_log_probability()
    {
        using var lm = LanguageModel.Load(_tiny.Path);
        using var engine = new BatchEngine(lm);
        var ids = lm.Tokenizer.Encode("Stop here");
        var first = lm.Generate(ids, new GenerationOptions { MaxNewTokens = 1 }).Tokens[0];
        var request = new CompletionRequest
        {
            PromptIds = ids,
            Options = new GenerationOptions { MaxNewTokens = 5, StopTokenIds = [first] },
            Logprobs = 2,
        };
        engine.Submit(request, default, out var events);
        var got = await All(events);
        var stop = Assert.Single(got.OfType<TokenGenerated>());
        Assert.True(stop.IsStop);
        Assert.Equal(first, stop.Id);
        Assert.Equal("", stop.Text);
        Assert.Equal(first, stop.Logprob!.Top[0].Id); // greedy: the stop token was the likeliest
        var end = Assert.IsType<CompletionFinished>(got[^1]);
        Assert.Equal((FinishReason.Stop, 0), (end.Reason, end.CompletionTokens));
    }

    [Fact]
    public async Task Choices_are_queued_all_or_none_and_cancelled_waiters_give_their_places_back()
    {
        using var lm = LanguageModel.Load(_tiny.Path);
        using var engine = new BatchEngine(lm, maxBatch: 1, queueCapacity: 2);
        var ids = lm.Tokenizer.Encode("Queue");
        Assert.Equal(SubmitResult.TooLarge, engine.Submit([Request(ids, 2), Request(ids, 2), Request(ids, 2), Request(ids, 2)], default, out _));
        using var hold = new CancellationTokenSource();
        engine.Submit(Request(ids, 3000) with { Options = Request(ids, 3000).Options with { IgnoreEos = true } }, hold.Token, out var running);
        // Until the engine thread admits it, the long request holds a queue place of its own.
        var admitted = System.Diagnostics.Stopwatch.StartNew();
        while ((engine.Active == 0 || engine.Queued > 0) && admitted.Elapsed < TimeSpan.FromSeconds(30)) await Task.Delay(1);
        Assert.Equal(1, engine.Active);
        using var waiters = new CancellationTokenSource();
        Assert.Equal(SubmitResult.Accepted, engine.Submit([Request(ids, 2), Request(ids, 2)], waiters.Token, out var waiting));
        Assert.Equal(SubmitResult.QueueFull, engine.Submit([Request(ids, 2)], default, out _));
        waiters.Cancel(); // the two waiting ones leave the queue while the first still runs
        foreach (var w in waiting) Assert.Equal(FinishReason.Cancelled, Assert.IsType<CompletionFinished>((await All(w))[^1]).Reason);
        Assert.Equal(0, engine.Queued);
        Assert.Equal(SubmitResult.Accepted, engine.Submit([Request(ids, 2), Request(ids, 2)], default, out var next));
        hold.Cancel();
        await All(running);
        foreach (var n in next) Assert.IsType<CompletionFinished>((await All(n))[^1]);
    }

    [Fact]
    public async Task A_full_engine_refuses_and_a_cancelled_request_leaves_the_batch()
    {
        using var lm = LanguageModel.Load(_tiny.Path);
        using var engine = new BatchEngine(lm, maxBatch: 1, queueCapacity: 1);
        var ids = lm.Tokenizer.Encode("A long one");
        using var cancel = new CancellationTokenSource();
        Assert.Equal(SubmitResult.Accepted, engine.Submit(Request(ids, 3000) with { Options = Request(ids, 3000).Options with { IgnoreEos = true } }, cancel.Token, out var running));
        Assert.Equal(SubmitResult.Accepted, engine.Submit(Request(ids, 2), default, out var waiting));
        Assert.Equal(SubmitResult.QueueFull, engine.Submit(Request(ids, 2), default, out _));
        cancel.Cancel();
        var events = await All(running);
        Assert.Equal(FinishReason.Cancelled, Assert.IsType<CompletionFinished>(events[^1]).Reason);
        Assert.IsType<CompletionFinished>((await All(waiting))[^1]);
        await engine.StopAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(SubmitResult.ShuttingDown, engine.Submit(Request(ids, 2), default, out _));
    }

    [Fact]
    public async Task A_bad_request_fails_alone()
    {
        using var lm = LanguageModel.Load(_tiny.Path);
        using var engine = new BatchEngine(lm);
        engine.Submit(Request([lm.Config.VocabSize + 5], 2), default, out var bad);
        engine.Submit(Request(lm.Tokenizer.Encode("fine"), 2), default, out var good);
        var failed = Assert.IsType<CompletionFailed>((await All(bad))[^1]);
        Assert.True(failed.IsUserError);
        Assert.Contains("outside the model's vocabulary", failed.Message);
        Assert.IsType<CompletionFinished>((await All(good))[^1]);
        Assert.Equal(0, engine.Active);
    }

    [Fact]
    public async Task Prompts_admitted_together_prefill_in_one_pass_and_give_what_each_gives_alone()
    {
        using var local = LanguageModel.Load(_tiny.Path);
        using var served = LanguageModel.Load(_tiny.Path);
        using var engine = new BatchEngine(served, maxBatch: 8, admitTogether: 8);
        // Few-shot prompts of one task: a long shared prefix (computed once, then copied) and different questions.
        // Two tasks' shots, mixed in one admission: each task's prefix is computed once for its own prompts.
        var shots = "Question: two plus two? Answer: four.\nQuestion: the capital of France? Answer: Paris.\n";
        var otherShots = "Traduis : le chat. Réponse : the cat.\nTraduis : la maison bleue. Réponse : the blue house.\n";
        string[] questions = ["Question: three times three? Answer:", "Question: le chien? Answer:", "Q:", "Question: el gato negro y el perro blanco? Answer:"];
        var requests = new List<CompletionRequest>();
        foreach (var (q, i) in questions.Select((q, i) => (q, i)))
        {
            requests.Add(Request(local.Tokenizer.Encode(shots + q), 5 + i, temperature: i % 2 == 0 ? 0 : 0.8f, seed: (ulong)i));
            requests.Add(Request(local.Tokenizer.Encode(i % 2 == 0 ? otherShots + q : q), 3)); // another task's prefix, or none
        }
        Assert.True(local.Tokenizer.Encode(shots).Length >= 16 && local.Tokenizer.Encode(otherShots).Length >= 16);

        async Task Check(List<CompletionRequest> batch, int? bad)
        {
            Assert.Equal(SubmitResult.Accepted, engine.Submit(batch, default, out var events));
            for (int i = 0; i < batch.Count; i++)
            {
                var got = await All(events[i]);
                if (i == bad)
                {
                    Assert.Contains("outside the model's vocabulary", Assert.IsType<CompletionFailed>(got[^1]).Message);
                    continue;
                }
                var expected = local.Generate(batch[i].PromptIds, batch[i].Options);
                var finished = Assert.IsType<CompletionFinished>(got[^1]);
                Assert.Equal(expected.Text, finished.Text);
                Assert.Equal(expected.Tokens, got.OfType<TokenGenerated>().Where(t => t.Id >= 0 && !t.IsStop).Select(t => t.Id).ToList());
            }
        }

        // All eight together, then the first task's prompts again (its prefix may still be in the trunk), then one alone.
        await Check(requests, bad: null);
        Assert.Equal(8, engine.LargestPrefill);
        await Check(requests.Where((_, i) => i % 2 == 0).ToList(), bad: null);
        await Check([requests[2]], bad: null);
        // A prompt the model cannot take fails alone; the others in its pass still run.
        var withBad = requests.Take(4).Append(Request([.. requests[0].PromptIds, served.Config.VocabSize + 3], 2)).ToList();
        await Check(withBad, bad: 4);
        Assert.Equal(0, engine.Active);
    }
}
