using System.Text.Json.Nodes;

namespace Attune.Evaluation;

/// <summary>What <c>attune score</c> does to one JSONL record: <c>{"context","continuation"}</c> → <c>{"logprob","greedy","tokens"}</c>.</summary>
public static class ScoreRecords
{
    public static JsonObject Score(IModelBackend model, RecordFields record)
    {
        var context = record.OptionalString("context", "");
        var continuation = record.RequiredString("continuation");
        if (continuation.Length == 0) throw record.Error("\"continuation\" is empty");
        var r = model.LoglikelihoodAsync(context, continuation).GetAwaiter().GetResult();
        return new JsonObject { ["logprob"] = r.LogProb, ["greedy"] = r.IsGreedy, ["tokens"] = r.Tokens };
    }
}
