using System.Text.Json;
using System.Text.Json.Nodes;
using Json.Schema;
using TritonEmulator.Models.Guided;
using TritonEmulator.Tests.Models.Vllm;

namespace TritonEmulator.Tests.Models.Guided;

/// <summary>
/// Structured outputs on the real llama.cpp engine: the tiny model only ever continues the
/// alphabet, so any JSON it writes comes from the grammar in the sampling chain.
/// </summary>
public sealed class GuidedDecodingTests(TinyLlamaEngine engine) : IClassFixture<TinyLlamaEngine>
{
    internal const string PersonSchema = """
        {"type":"object","properties":{
          "name":{"type":"string","minLength":2,"maxLength":8},
          "age":{"type":"integer","minimum":18,"maximum":120},
          "score":{"type":"number","exclusiveMinimum":-5,"maximum":5},
          "member":{"type":"boolean"},
          "tags":{"type":"array","items":{"enum":["red","green","blue"]},"minItems":1,"maxItems":3},
          "nickname":{"anyOf":[{"type":"string","maxLength":4},{"type":"null"}]},
          "home":{"$ref":"#/$defs/place"},
          "code":{"type":"string","pattern":"^[A-Z]{2}-[0-9]{3}$"},
          "kind":{"const":"person"}
        },
        "required":["name","age","score","member","tags","nickname","home","code","kind"],
        "additionalProperties":false,
        "$defs":{"place":{"type":"object","properties":{"city":{"type":"string","maxLength":6},"zip":{"type":"integer","minimum":1000,"maximum":99999}},"required":["city","zip"],"additionalProperties":false}}}
        """;

    private async Task<(string Text, string Finish)> GenerateAsync(string prompt, object sampling, bool stream = false)
    {
        var json = JsonSerializer.Serialize(sampling);
        var messages = await engine.StreamAsync(TinyLlamaEngine.Request(TinyLlamaEngine.Model, "g-" + Guid.NewGuid().ToString("N"), prompt, json,
            ("stream", stream), ("exclude_input_in_output", true), ("return_finish_reason", true)));
        Assert.All(messages, m => Assert.Empty(m.ErrorMessage));
        var text = string.Concat(messages.Select(m => TinyLlamaEngine.Text(m.InferResponse, "text_output")));
        return (text, TinyLlamaEngine.Text(messages[^1].InferResponse, "finish_reason")!);
    }

    private static void AssertValid(string schema, string text)
    {
        var node = JsonNode.Parse(text);
        var result = JsonSchema.FromText(schema).Evaluate(JsonDocument.Parse(text).RootElement, new EvaluationOptions { OutputFormat = OutputFormat.List });
        Assert.True(result.IsValid, $"{text} is not valid: {JsonSerializer.Serialize(result)}");
        Assert.NotNull(node);
    }

    [Fact]
    public async Task Unconstrained_TheTinyModelWritesNoJson()
    {
        var (text, _) = await GenerateAsync("abc", new { temperature = 0, max_tokens = 60 });
        Assert.Equal(TinyLlama.AfterC, text);
        Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(text));
    }

    [Theory]
    [InlineData(false, 0)]
    [InlineData(true, 0)]
    [InlineData(false, 1.5)]
    [InlineData(true, 1.5)]
    public async Task StructuredOutputs_JsonSchema_EveryAnswerIsSchemaValid(bool stream, double temperature)
    {
        var structured = JsonSerializer.Serialize(new { json = JsonNode.Parse(PersonSchema), disable_any_whitespace = true });
        var (text, finish) = await GenerateAsync("abc", new { temperature, seed = 3, max_tokens = 200, structured_outputs = structured }, stream);

        Assert.Equal("stop", finish);
        AssertValid(PersonSchema, text);
    }

    [Fact]
    public async Task GuidedDecoding_OlderKeyAndJsonObject_GiveAnObject()
    {
        var (text, finish) = await GenerateAsync("abc", new { temperature = 0, max_tokens = 120, guided_decoding = new { json_object = true } });
        // The tiny model may not close what it opens within the budget; whatever it wrote is a prefix of an object.
        Assert.StartsWith("{", text);
        if (finish == "stop")
        {
            Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(text).RootElement.ValueKind);
        }
    }

    [Fact]
    public async Task StructuredOutputs_ChoiceAndRegex()
    {
        var (choice, _) = await GenerateAsync("abc", new { temperature = 0, max_tokens = 20, structured_outputs = """{"choice":["Positive","Negative"]}""" });
        Assert.Contains(choice, new[] { "Positive", "Negative" });
        var (regex, finish) = await GenerateAsync("abc", new { temperature = 0, max_tokens = 20, structured_outputs = """{"regex":"[0-9]{3}-(yes|no)"}""" });
        Assert.Equal("stop", finish);
        Assert.Matches("^[0-9]{3}-(yes|no)$", regex);
    }

    internal const string WeatherSchema = """
        {"type":"object","properties":{"city":{"type":"string","maxLength":10},"unit":{"enum":["celsius","fahrenheit"]}},
         "required":["city","unit"],"additionalProperties":false}
        """;

    private static string StructuralTag(string trigger, string begin, string end) => JsonSerializer.Serialize(new
    {
        structural_tag = JsonSerializer.Serialize(new
        {
            type = "structural_tag",
            structures = new object[] { new { begin, schema = JsonNode.Parse(WeatherSchema), end } },
            triggers = new[] { trigger },
        }),
        disable_any_whitespace = true,
    });

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task StructuralTag_FreeUntilTheTrigger_ThenTheSchemaAndTheEnd(bool stream)
    {
        // The tiny model writes " d e f g …": free text up to the trigger " f", then the grammar holds.
        var (text, finish) = await GenerateAsync("abc", new { temperature = 0, max_tokens = 120, structured_outputs = StructuralTag(" f", " f=", "</call>") }, stream);

        Assert.Equal("stop", finish);
        Assert.StartsWith(" d e f=", text);
        Assert.EndsWith("</call>", text);
        AssertValid(WeatherSchema, text[" d e f=".Length..^"</call>".Length]);
    }

    [Fact]
    public async Task StructuralTag_TriggerNeverWritten_TheTextIsUnconstrained()
    {
        var (text, finish) = await GenerateAsync("abc", new { temperature = 0, max_tokens = 60, structured_outputs = StructuralTag("<tool_call>", "<tool_call>{\"name\": \"get_weather\", \"arguments\": ", "}</tool_call>") });
        Assert.Equal(TinyLlama.AfterC, text);
        Assert.Equal("stop", finish);
    }

    [Fact]
    public async Task StructuralTag_BeginNotStartingWithATrigger_IsAnInvalidArgument()
    {
        var messages = await engine.StreamAsync(TinyLlamaEngine.Request(TinyLlamaEngine.Model, "tag-" + Guid.NewGuid().ToString("N"), "abc",
            JsonSerializer.Serialize(new { structured_outputs = StructuralTag("<tool_call>", "[call]", "[/call]") })));
        Assert.Contains("does not start with any of the triggers", Assert.Single(messages).ErrorMessage);
    }

    [Fact]
    public async Task UnsupportedSchemaKeyword_IsAnInvalidArgumentNamingIt()
    {
        var messages = await engine.StreamAsync(TinyLlamaEngine.Request(TinyLlamaEngine.Model, "bad-" + Guid.NewGuid().ToString("N"), "abc",
            """{"structured_outputs": "{\"json\": {\"type\":\"object\",\"allOf\":[]}}"}"""));
        var error = Assert.Single(messages).ErrorMessage;
        Assert.Contains("allOf", error);
    }

    [Theory]
    [InlineData(0, 0)]
    [InlineData(5, 17)]
    [InlineData(18, 120)]
    [InlineData(-42, 7)]
    [InlineData(-300, -12)]
    [InlineData(999, 1001)]
    [InlineData(10, 99)]
    [InlineData(123, 4567)]
    public void IntegerRange_MatchesExactlyTheIntegersInside(int lo, int hi)
    {
        var grammar = "root ::= " + JsonSchemaGrammar.IntegerRange(lo, hi);
        // Checked against .NET's regex engine: a GBNF made of literals, classes and alternation reads as a regex.
        var regex = new System.Text.RegularExpressions.Regex("^(?:" + GbnfToRegex(grammar["root ::= ".Length..]) + ")$");
        for (var n = lo - 50; n <= hi + 50; n++)
        {
            Assert.True(regex.IsMatch(n.ToString(System.Globalization.CultureInfo.InvariantCulture)) == (n >= lo && n <= hi), $"{n} in [{lo}, {hi}]: {grammar}");
        }
        Assert.DoesNotMatch(regex, "0" + hi);
    }

    private static string GbnfToRegex(string gbnf) =>
        System.Text.RegularExpressions.Regex.Replace(gbnf.Replace(" ", ""), "\"([^\"]*)\"", m => System.Text.RegularExpressions.Regex.Escape(m.Groups[1].Value));
}

public sealed class GuidedGrammarErrorTests(TinyLlamaEngine engine) : IClassFixture<TinyLlamaEngine>
{
    [Theory]
    [InlineData("root ::= (")]
    [InlineData("root ::= root \"a\"")]
    [InlineData("start ::= \"a\"")]
    public async Task BadGrammar_IsAnInvalidArgument_AndTheEngineKeepsServing(string grammar)
    {
        var sampling = JsonSerializer.Serialize(new { max_tokens = 5, structured_outputs = JsonSerializer.Serialize(new { grammar }) });
        var messages = await engine.StreamAsync(TinyLlamaEngine.Request(TinyLlamaEngine.Model, "bad-" + Guid.NewGuid().ToString("N"), "abc", sampling));
        Assert.Contains("grammar", Assert.Single(messages).ErrorMessage);

        var again = await engine.StreamAsync(TinyLlamaEngine.Request(TinyLlamaEngine.Model, "ok-" + Guid.NewGuid().ToString("N"), "abc", """{"temperature":0,"max_tokens":3}""",
            ("exclude_input_in_output", true)));
        Assert.Equal(" d e f", TinyLlamaEngine.Text(again[^1].InferResponse, "text_output"));
    }
}
