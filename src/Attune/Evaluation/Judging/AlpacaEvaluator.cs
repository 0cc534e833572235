using System.Text.RegularExpressions;
using Attune.Prompting;
using YamlDotNet.RepresentationModel;

namespace Attune.Evaluation.Judging;

/// <summary>
/// A pairwise judge configured as AlpacaEval configures its annotators: a <c>configs.yaml</c> naming a prompt template
/// (with {instruction}, {output_1} and {output_2}; chat turns written in ChatML, &lt;|im_start|&gt;role … &lt;|im_end|&gt;), the
/// completion settings, and how the reply becomes a preference in [1, 2] (1: output_1 is better):
/// <list type="bullet">
/// <item><c>logprob_parser</c> (AlpacaEval 2.0's weighted judges): from the first token's top log-probabilities,
/// 2 − p(numerator token) / Σ p(denominator tokens), or 1 / 2 when <c>is_binarize</c>; no known token: unreadable;</item>
/// <item><c>regex_parser</c>: the key of whichever <c>outputs_to_match</c> pattern matches earliest in the reply.</item>
/// </list>
/// The user brings the file; Attune ships no AlpacaEval prompt text.
/// </summary>
public sealed class AlpacaEvaluator
{
    public string Name { get; }
    readonly IReadOnlyList<(string Role, string Content)> _template;
    public int MaxTokens { get; }
    public double Temperature { get; }
    /// <summary>How many top log-probabilities to ask for (0: the parser reads text).</summary>
    public int TopLogprobs { get; }
    readonly string? _numerator;
    readonly IReadOnlyList<string> _denominators = [];
    readonly bool _binarize;
    readonly IReadOnlyList<(double Preference, Regex Pattern)> _patterns = [];

    AlpacaEvaluator(string name, IReadOnlyList<(string, string)> template, int maxTokens, double temperature, int topLogprobs,
        string? numerator, IReadOnlyList<string> denominators, bool binarize, IReadOnlyList<(double, Regex)> patterns)
    {
        Name = name; _template = template; MaxTokens = maxTokens; Temperature = temperature; TopLogprobs = topLogprobs;
        _numerator = numerator; _denominators = denominators; _binarize = binarize; _patterns = patterns;
    }

    /// <summary>Reads an annotator's configs.yaml; its prompt template is looked for beside it, then in the folder above (AlpacaEval's evaluators_configs).</summary>
    public static AlpacaEvaluator Load(string configPath)
    {
        AttuneException Bad(string field, string what) => new(configPath, field, what);
        YamlMappingNode root;
        try
        {
            var yaml = new YamlStream();
            using (var reader = new StreamReader(configPath)) yaml.Load(reader);
            root = yaml.Documents.FirstOrDefault()?.RootNode as YamlMappingNode ?? throw Bad("", "must map the annotator's name to its settings");
        }
        catch (IOException e) { throw new AttuneException(configPath, e.Message); }
        catch (YamlDotNet.Core.YamlException e) { throw new AttuneException(configPath, $"line {e.Start.Line}: {e.Message}"); }
        if (root.Children.Count != 1 || root.Children.First().Value is not YamlMappingNode settings) throw Bad("", "must map one annotator's name to its settings");
        var name = root.Children.First().Key.ToString();
        string? Scalar(YamlMappingNode node, string key) => node.Children.TryGetValue(new YamlScalarNode(key), out var v) && v is YamlScalarNode s ? s.Value : null;
        YamlMappingNode? Map(YamlMappingNode node, string key) => node.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v as YamlMappingNode : null;

        var templateName = Scalar(settings, "prompt_template") ?? throw Bad($"{name}.prompt_template", "is missing");
        var dir = Path.GetDirectoryName(Path.GetFullPath(configPath))!;
        var templatePath = new[] { Path.Combine(dir, templateName), Path.Combine(Path.GetDirectoryName(dir) ?? dir, templateName), Path.Combine(dir, Path.GetFileName(templateName)) }
            .FirstOrDefault(File.Exists) ?? throw Bad($"{name}.prompt_template", $"\"{templateName}\" is neither beside the configuration nor in the folder above it");
        var template = ChatMl(File.ReadAllText(templatePath));

        var completion = Map(settings, "completions_kwargs");
        int Int(string key, int dflt) => completion is not null && Scalar(completion, key) is { } v ? int.TryParse(v, out var i) ? i : throw Bad($"{name}.completions_kwargs.{key}", "must be a whole number") : dflt;
        double temperature = completion is not null && Scalar(completion, "temperature") is { } t
            ? double.TryParse(t, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) ? d : throw Bad($"{name}.completions_kwargs.temperature", "must be a number")
            : 0;
        var parser = Scalar(settings, "fn_completion_parser") ?? "regex_parser";
        var kwargs = Map(settings, "completion_parser_kwargs") ?? new YamlMappingNode();
        switch (parser)
        {
            case "logprob_parser":
            {
                var numerator = Scalar(kwargs, "numerator_token") ?? throw Bad($"{name}.completion_parser_kwargs.numerator_token", "is missing");
                var denominators = kwargs.Children.TryGetValue(new YamlScalarNode("denominator_tokens"), out var dn) && dn is YamlSequenceNode seq
                    ? seq.Children.Select(x => x.ToString()).ToList() : throw Bad($"{name}.completion_parser_kwargs.denominator_tokens", "must be a list of tokens");
                bool binarize = Scalar(kwargs, "is_binarize") is { } b ? bool.Parse(b) : true;
                int top = Int("top_logprobs", 5);
                if (top < 1) throw Bad($"{name}.completions_kwargs.top_logprobs", "must be ≥ 1 for the log-probability parser");
                return new AlpacaEvaluator(name, template, Int("max_tokens", 1), temperature, top, numerator, denominators, binarize, []);
            }
            case "regex_parser":
            {
                var outputs = Map(kwargs, "outputs_to_match") ?? throw Bad($"{name}.completion_parser_kwargs.outputs_to_match", "must map each preference to a pattern");
                var patterns = outputs.Children.Select(kv =>
                {
                    var key = kv.Key.ToString();
                    return double.TryParse(key, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var pref) && pref is >= 1 and <= 2
                        ? (pref, new Regex(kv.Value.ToString(), RegexOptions.None, TimeSpan.FromSeconds(1)))
                        : throw Bad($"{name}.completion_parser_kwargs.outputs_to_match", $"\"{key}\" is not a preference in [1, 2]");
                }).ToList();
                return new AlpacaEvaluator(name, template, Int("max_tokens", 50), temperature, 0, null, [], false, patterns);
            }
            default:
                throw Bad($"{name}.fn_completion_parser", $"\"{parser}\" is not one Attune reads (logprob_parser, regex_parser)");
        }
    }

    /// <summary>A ChatML text as its turns (AlpacaEval's prompt_to_chatml): each &lt;|im_start|&gt;role, a line break, the content up to &lt;|im_end|&gt;, trimmed; plain text is one user turn.</summary>
    static List<(string Role, string Content)> ChatMl(string text)
    {
        var trimmed = text.Trim();
        if (!trimmed.StartsWith("<|im_start|>", StringComparison.Ordinal)) return [("user", trimmed)];
        var turns = new List<(string, string)>();
        foreach (var part in trimmed.Split("<|im_start|>").Skip(1))
        {
            int newline = part.IndexOf('\n');
            var role = (newline < 0 ? part : part[..newline]).Trim();
            var content = newline < 0 ? "" : part[(newline + 1)..];
            int end = content.IndexOf("<|im_end|>", StringComparison.Ordinal);
            if (end >= 0) content = content[..end];
            turns.Add((role.StartsWith("system", StringComparison.Ordinal) ? "system" : role, content.Trim()));
        }
        return turns;
    }

    /// <summary>The judge's conversation for one pair (output_1 shown first).</summary>
    public IReadOnlyList<ChatMessage> Prompt(string instruction, string output1, string output2)
    {
        var values = new Dictionary<string, string> { ["instruction"] = instruction, ["output_1"] = output1, ["output_2"] = output2 };
        return _template.Select(t => new ChatMessage(t.Role, Regex.Replace(t.Content, @"\{(instruction|output_1|output_2)\}", m => values[m.Groups[1].Value]))).ToList();
    }

    /// <summary>The preference in [1, 2] the reply gives (1: output_1 better), or null when it gives none.</summary>
    public double? Parse(GeneratedText reply)
    {
        if (_numerator is not null)
        {
            var logprobs = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach (var t in reply.TopLogprobs ?? [])
                if (t.Token == _numerator || _denominators.Contains(t.Token)) logprobs[t.Token] = t.Logprob; // a later entry for the same token wins, as in the reference's dict
            if (logprobs.Count == 0) return null;
            double numerator = logprobs.GetValueOrDefault(_numerator, double.NegativeInfinity);
            var others = _denominators.Select(d => logprobs.GetValueOrDefault(d, double.NegativeInfinity)).ToList();
            if (_binarize) return _denominators.Where(d => d != _numerator).All(d => numerator > logprobs.GetValueOrDefault(d, double.NegativeInfinity)) ? 1 : 2;
            double max = others.Max();
            double denominator = double.IsNegativeInfinity(max) ? max : max + Math.Log(others.Sum(l => Math.Exp(l - max)));
            return 2 - Math.Exp(numerator - denominator);
        }
        (double Preference, int At)? best = null;
        foreach (var (pref, pattern) in _patterns)
            if (pattern.Match(reply.Text) is { Success: true } m && (best is null || m.Index < best.Value.At)) best = (pref, m.Index);
        return best?.Preference;
    }
}
