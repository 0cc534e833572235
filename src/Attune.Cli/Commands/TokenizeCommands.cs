using System.CommandLine;
using System.Text.Json.Nodes;
using Attune.Text;

namespace Attune.Cli.Commands;

/// <summary><c>attune tokenize</c> and <c>attune detokenize</c>: JSONL through a tokenizer.json.</summary>
public static class TokenizeCommands
{
    static Option<string> TokenizerOption() => new("--tokenizer")
    {
        Description = "A checkpoint folder or a tokenizer.json file (tokenizer_config.json beside it is read too)",
        Required = true,
    };

    public static Command Tokenize()
    {
        var tokenizer = TokenizerOption();
        var noSpecial = new Option<bool>("--no-special-tokens")
        {
            Description = "Do not add BOS/EOS or other template tokens (special tokens written in the text are still recognised)",
        };
        var cmd = new Command("tokenize", "Encode text: JSONL {\"text\"} on stdin → {\"ids\"} on stdout") { tokenizer, noSpecial };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var tok = Tokenizer.Load(parse.GetValue(tokenizer)!);
            bool add = !parse.GetValue(noSpecial);
            var ids = new List<int>();
            foreach (var (line, rec) in Jsonl.Read(io.In))
            {
                var text = Jsonl.RequiredString(rec, "text", line);
                ids.Clear();
                tok.Encode(text, ids, add);
                var arr = new JsonArray();
                foreach (var id in ids) arr.Add(id);
                Jsonl.Write(io.Out, new JsonObject { ["ids"] = arr });
            }
            return Program.Success;
        });
        return cmd;
    }

    public static Command Detokenize()
    {
        var tokenizer = TokenizerOption();
        var skip = new Option<bool>("--skip-special-tokens") { Description = "Leave special tokens out of the text" };
        var cmd = new Command("detokenize", "Decode ids: JSONL {\"ids\"} on stdin → {\"text\"} on stdout") { tokenizer, skip };
        cmd.SetAction(parse =>
        {
            var io = CliIO.Get();
            var tok = Tokenizer.Load(parse.GetValue(tokenizer)!);
            bool skipSpecial = parse.GetValue(skip);
            foreach (var (line, rec) in Jsonl.Read(io.In))
            {
                if (rec["ids"] is not JsonArray arr)
                    throw new AttuneException("<stdin>", $"line {line}", "field \"ids\" must be an array of integers");
                var ids = new int[arr.Count];
                for (int i = 0; i < arr.Count; i++)
                    ids[i] = arr[i] is JsonValue v && v.TryGetValue<int>(out var id) ? id
                        : throw new AttuneException("<stdin>", $"line {line}", $"ids[{i}] is not an integer");
                Jsonl.Write(io.Out, new JsonObject { ["text"] = tok.Decode(ids, skipSpecial) });
            }
            return Program.Success;
        });
        return cmd;
    }
}
