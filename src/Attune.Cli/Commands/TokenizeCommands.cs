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
            Jsonl.Transform(io, r => TokenizerRecords.Encode(tok, r, add));
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
            Jsonl.Transform(io, r => TokenizerRecords.Decode(tok, r, skipSpecial));
            return Program.Success;
        });
        return cmd;
    }
}
