using Web.Chat;
using Web.Conversations;

namespace Web.Tests.Chat;

public sealed class StructuredOutputTests
{
    private const string Schema = """{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""";
    private const string Tools = """[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]""";

    [Fact]
    public void Defaults_ArePlainText()
    {
        var check = StructuredOutput.From(new ChatSettings());

        Assert.True(check.IsValid);
        Assert.True(check.Output!.IsPlain);
        Assert.False(check.Output.WantsJson);
    }

    [Fact]
    public void JsonSchema_ValidObject_IsCarriedWithNameAndStrict()
    {
        var check = StructuredOutput.From(new ChatSettings { ResponseFormat = ResponseFormatKind.JsonSchema, SchemaName = "weather", Schema = "  " + Schema + "\n", SchemaStrict = false });

        Assert.True(check.IsValid);
        Assert.Equal(ResponseFormatKind.JsonSchema, check.Output!.Format);
        Assert.Equal(Schema, check.Output.Schema);
        Assert.Equal("weather", check.Output.SchemaName);
        Assert.False(check.Output.Strict);
        Assert.True(check.Output.WantsJson);
        Assert.False(check.Output.IsPlain);
    }

    [Theory]
    [InlineData("", "Enter a JSON schema")]
    [InlineData("""{"type":"object",}""", "not valid JSON")]
    [InlineData("""{"type":"object" """, "not valid JSON")]
    [InlineData("""["type"]""", "must be a JSON object, not an array")]
    [InlineData("\"object\"", "must be a JSON object, not a string")]
    public void JsonSchema_NotAJsonObject_IsRejectedWithAReason(string schema, string reason)
    {
        var check = StructuredOutput.From(new ChatSettings { ResponseFormat = ResponseFormatKind.JsonSchema, Schema = schema });

        Assert.False(check.IsValid);
        Assert.Null(check.Output);
        Assert.Contains(reason, check.SchemaError, StringComparison.Ordinal);
        Assert.Null(check.ToolsError);
    }

    [Fact]
    public void JsonSchema_InvalidJson_NamesLineAndColumn()
    {
        var check = StructuredOutput.From(new ChatSettings { ResponseFormat = ResponseFormatKind.JsonSchema, Schema = "{\n  \"type\": object\n}" });

        Assert.Contains("(line 2, column", check.SchemaError, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("has space")]
    [InlineData("a.b")]
    public void JsonSchema_BadName_IsRejected(string name)
    {
        var check = StructuredOutput.From(new ChatSettings { ResponseFormat = ResponseFormatKind.JsonSchema, SchemaName = name, Schema = Schema });

        Assert.False(check.IsValid);
        Assert.Contains("schema name", check.SchemaError, StringComparison.Ordinal);
    }

    [Fact]
    public void JsonObject_IgnoresTheSchemaText()
    {
        var check = StructuredOutput.From(new ChatSettings { ResponseFormat = ResponseFormatKind.JsonObject, Schema = "not json" });

        Assert.True(check.IsValid);
        Assert.Equal(ResponseFormatKind.JsonObject, check.Output!.Format);
        Assert.Null(check.Output.Schema);
    }

    [Fact]
    public void Tools_ValidArray_WithNamedChoice_IsCarried()
    {
        var check = StructuredOutput.From(new ChatSettings { Tools = Tools, ToolChoice = ToolChoiceKind.Named, ToolChoiceName = "get_weather" });

        Assert.True(check.IsValid);
        Assert.Equal(Tools, check.Output!.Tools);
        Assert.Equal(ToolChoiceKind.Named, check.Output.ToolChoice);
        Assert.Equal("get_weather", check.Output.ToolName);
        Assert.False(check.Output.IsPlain);
        Assert.False(check.Output.WantsJson);
    }

    [Theory]
    [InlineData("{}", "non-empty JSON array")]
    [InlineData("[]", "non-empty JSON array")]
    [InlineData("[{\"type\":\"function\"}]", "Tool 1 needs a \"function\" object")]
    [InlineData("[{\"type\":\"function\",\"function\":{\"name\":\"bad name\"}}]", "Tool 1's name")]
    [InlineData("[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},]", "not valid JSON")]
    public void Tools_Invalid_AreRejected(string tools, string reason)
    {
        var check = StructuredOutput.From(new ChatSettings { Tools = tools });

        Assert.False(check.IsValid);
        Assert.Contains(reason, check.ToolsError, StringComparison.Ordinal);
    }

    [Fact]
    public void Tools_NamedChoice_MustNameOneOfTheTools()
    {
        var check = StructuredOutput.From(new ChatSettings { Tools = Tools, ToolChoice = ToolChoiceKind.Named, ToolChoiceName = "get_time" });

        Assert.False(check.IsValid);
        Assert.Equal("No tool is named 'get_time'.", check.ToolsError);
    }

    [Fact]
    public void BothInvalid_ProblemNamesBoth()
    {
        var check = StructuredOutput.From(new ChatSettings { ResponseFormat = ResponseFormatKind.JsonSchema, Schema = "[", Tools = "{" });

        Assert.Contains("schema", check.Problem, StringComparison.Ordinal);
        Assert.Contains("Tools", check.Problem, StringComparison.Ordinal);
    }
}
