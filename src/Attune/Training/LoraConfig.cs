using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Attune.Training;

/// <summary>
/// Low-rank adapters on the decoder's linear layers (Hu et al., 2021): W·x + (alpha/rank)·B·A·x with the
/// base W frozen, A [rank, in] random and B [out, rank] zero at the start, no dropout. Names and files follow
/// PEFT: <c>{module}.lora_A.weight</c>, <c>adapter_model.safetensors</c> under <c>base_model.model.</c>,
/// <c>adapter_config.json</c>.
/// </summary>
public sealed record LoraConfig
{
    public const string AllLinear = "all-linear";
    public const string PeftPrefix = "base_model.model.";
    public const string AdapterWeightsFile = "adapter_model.safetensors";
    public const string AdapterConfigFile = "adapter_config.json";

    public int Rank { get; init; } = 8;
    public double Alpha { get; init; } = 16;
    /// <summary>Module-name patterns: a regular expression matched against the end of the module name at a dot
    /// boundary (<c>q_proj</c>, <c>mlp\..*</c>), or <c>all-linear</c>. PEFT's default for Llama-family models is q_proj and v_proj.</summary>
    public IReadOnlyList<string> TargetModules { get; init; } = ["q_proj", "v_proj"];
    /// <summary>Seed of the A matrices' initialisation.</summary>
    public ulong Seed { get; init; } = 42;

    public double Scale => Alpha / Rank;

    public void Validate()
    {
        if (Rank < 1) throw new AttuneException(null, "--lora-rank", "must be at least 1");
        if (!(Alpha > 0)) throw new AttuneException(null, "--lora-alpha", "must be positive");
        if (TargetModules.Count == 0) throw new AttuneException(null, "--lora-targets", "names no module");
        foreach (var p in TargetModules)
        {
            if (p == AllLinear) continue;
            try { _ = new Regex(p); }
            catch (ArgumentException e) { throw new AttuneException(null, "--lora-targets", $"\"{p}\" is not a valid pattern: {e.Message}"); }
        }
    }

    public bool Targets(string module) =>
        TargetModules.Any(p => p == AllLinear || Regex.IsMatch(module, $"(^|\\.)(?:{p})$", RegexOptions.CultureInvariant));

    public static string AName(string module) => module + ".lora_A.weight";
    public static string BName(string module) => module + ".lora_B.weight";
    public static bool IsAdapterName(string name) => name.Contains(".lora_A.", StringComparison.Ordinal) || name.Contains(".lora_B.", StringComparison.Ordinal);

    /// <summary>adapter_config.json as PEFT writes it, listing the modules actually adapted.</summary>
    public string ToPeftJson(string baseModel, IEnumerable<string> modules)
    {
        var json = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = "CAUSAL_LM",
            ["base_model_name_or_path"] = baseModel,
            ["r"] = Rank,
            ["lora_alpha"] = Alpha,
            ["lora_dropout"] = 0.0,
            ["bias"] = "none",
            ["fan_in_fan_out"] = false,
            ["target_modules"] = new JsonArray(modules.Select(m => (JsonNode)m[(m.LastIndexOf('.') + 1)..]).DistinctBy(n => n.GetValue<string>()).ToArray()),
            ["attune_target_patterns"] = new JsonArray(TargetModules.Select(p => (JsonNode)p).ToArray()),
            ["attune_seed"] = Seed.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }
}
