using System.Text.Json.Nodes;
using Attune.Evaluation.Instructions;
using Attune.Evaluation.Tasks;
using Attune.Experiments;

namespace Attune.Tests.Experiments;

public class DemoWorldTests
{
    [Fact]
    public void The_world_is_trilingual_reproducible_and_keeps_the_test_items_out()
    {
        var world = DemoWorld.Generate(seed: 3, documentsPerLanguage: 300, instructionsPerLanguage: 60);
        Assert.Equal(900, world.Documents.Count);
        Assert.Equal(world.Documents, DemoWorld.Generate(seed: 3, documentsPerLanguage: 300, instructionsPerLanguage: 60).Documents);
        foreach (var lang in new[] { "en", "fr", "es" })
        {
            Assert.True(world.Sft.Count(s => s["lang"]!.GetValue<string>() == lang) >= 60);
            Assert.True(world.Preferences.Count(s => s["lang"]!.GetValue<string>() == lang) >= 20);
            // No built-in test query appears in the world in the suite's own format.
            var held = BuiltinSuite.Types.SelectMany(t => BuiltinSuite.Load(t, lang).Items())
                .Select(i => i.Context[(i.Context.LastIndexOf("\n\n", StringComparison.Ordinal) + 2)..]).ToList();
            Assert.DoesNotContain(world.Documents, d => held.Any(h => d.Contains(h, StringComparison.Ordinal)));
        }
    }

    [Fact]
    public void Chosen_responses_follow_their_instruction_and_rejected_ones_break_it()
    {
        var world = DemoWorld.Generate(seed: 5, documentsPerLanguage: 10, instructionsPerLanguage: 80);
        Assert.NotEmpty(world.Preferences);
        // The instruction's kind is recoverable from its phrasing; here, every chosen answer in capitals asked for capitals.
        foreach (var p in world.Preferences)
        {
            var chosen = p["chosen"]!.GetValue<string>();
            var rejected = p["rejected"]!.GetValue<string>();
            Assert.NotEqual(chosen, rejected);
            Assert.False(string.IsNullOrWhiteSpace(chosen));
        }
        var capitals = world.Preferences.Where(p => p["prompt"]!.GetValue<string>().Contains("capital letters only")).ToList();
        Assert.NotEmpty(capitals);
        Assert.All(capitals, p => Assert.True(Checkers.Follows(new Instruction("change_case:english_capital", []), p["chosen"]!.GetValue<string>(), "en")));
        Assert.All(capitals, p => Assert.False(Checkers.Follows(new Instruction("change_case:english_capital", []), p["rejected"]!.GetValue<string>(), "en")));
    }
}
