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
    public void Chosen_responses_follow_their_instructions_and_rejected_ones_break_one()
    {
        var world = DemoWorld.Generate(seed: 5, documentsPerLanguage: 10, instructionsPerLanguage: 80);
        Assert.NotEmpty(world.Preferences);
        foreach (var p in world.Preferences)
        {
            var chosen = p["chosen"]!.GetValue<string>();
            var rejected = p["rejected"]!.GetValue<string>();
            Assert.NotEqual(chosen, rejected);
            Assert.False(string.IsNullOrWhiteSpace(chosen));
        }
        // Capitals asked for in English: the chosen reply is in capitals, the rejected one is not.
        var capitals = world.Preferences.Where(p => p["prompt"]!.GetValue<string>().Contains("capital letters only")).ToList();
        Assert.NotEmpty(capitals);
        Assert.All(capitals, p => Assert.True(Checkers.Follows(new Instruction("change_case:english_capital", []), p["chosen"]!.GetValue<string>(), "en")));
        Assert.All(capitals, p => Assert.False(Checkers.Follows(new Instruction("change_case:english_capital", []), p["rejected"]!.GetValue<string>(), "en")));
    }

    [Theory]
    [InlineData("en")]
    [InlineData("fr")]
    [InlineData("es")]
    public void Composed_responses_follow_every_instruction_and_cover_every_kind_of_the_suite(string lang)
    {
        // A request and sentences of the language (the world's own are richer; any text of the language serves here).
        var (request, answer, more) = lang switch
        {
            "fr" => ("Parle-moi du marché.", "Le marché ouvre très tôt le matin. Il ferme à midi.", new[] { "Une petite barque attend près du pont.", "Les enfants jouent dans le jardin de leur grand-mère." }),
            "es" => ("Háblame del mercado.", "El mercado abre muy temprano por la mañana. Cierra a mediodía.", new[] { "Una pequeña barca espera junto al puente.", "Los niños juegan en el jardín de su abuela." }),
            _ => ("Tell me about the market.", "The market opens very early in the morning. It closes at noon.", new[] { "A small boat waits by the bridge.", "The children play in their grandmother's garden." }),
        };
        var (examples, dropped) = DemoInstructions.Generate(lang, 600, r => (request, answer), r => more[r.Next(more.Length)], new Attune.Tensors.Rng(11));
        Assert.Equal(600, examples.Count);
        // The checkers decide, not the composer: every kept reply follows every instruction of its prompt.
        foreach (var e in examples)
            Assert.All(e.Instructions, i => Assert.True(Checkers.Follows(i, e.Followed, lang), $"{i.Id} not followed in: {e.Followed}"));
        Assert.True(dropped < examples.Count / 5, $"{dropped} of {examples.Count + dropped} composed replies were rejected");
        // Every instruction kind the built-in suite asks in this language is taught.
        var suiteKinds = IfSuite.BuiltIn(lang).SelectMany(p => p.Instructions).Select(i => i.Id).ToHashSet();
        var taught = examples.SelectMany(e => e.Instructions).Select(i => i.Id).ToHashSet();
        Assert.Empty(suiteKinds.Except(taught));
    }
}
