using Bunit;
using Web.Chat;
using Web.Components.Chat;
using Web.Conversations;

namespace Web.Tests.Components;

public sealed class SettingsPanelTests : ChatTestContext
{
    private const string Schema = """{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}""";

    private ChatSettings _settings = new() { Model = "m" };

    // The page's part: keep what the panel raises and give it back as the parameter.
    private IRenderedComponent<SettingsPanel> RenderPanel()
    {
        IRenderedComponent<SettingsPanel>? cut = null;
        cut = Render<SettingsPanel>(p => p
            .Add(x => x.Settings, _settings)
            .Add(x => x.Models, [new ModelSummary("m", 2048, 512)])
            .Add(x => x.SettingsChanged, settings =>
            {
                _settings = settings;
                cut!.Render(q => q.Add(x => x.Settings, settings));
            }));
        return cut;
    }

    [Fact]
    public void ResponseFormat_DefaultsToText_WithNoSchemaFields()
    {
        var cut = RenderPanel();

        Assert.Equal("Text", cut.Find("#response-format").GetAttribute("value"));
        Assert.Empty(cut.FindAll("#schema-text"));
        Assert.Empty(cut.FindAll("[role=alert]"));
    }

    [Fact]
    public void JsonSchema_Invalid_ShowsInlineErrorAndIsNotUsable()
    {
        var cut = RenderPanel();
        cut.Find("#response-format").Change(nameof(ResponseFormatKind.JsonSchema));

        cut.Find("#schema-text").Change("""{"type": "object",""");

        var error = cut.Find("#schema-error");
        Assert.Equal("alert", error.GetAttribute("role"));
        Assert.Contains("not valid JSON", error.TextContent, StringComparison.Ordinal);
        Assert.Equal("true", cut.Find("#schema-text").GetAttribute("aria-invalid"));
        // Kept as typed, so it can be fixed, but nothing can be sent with it.
        Assert.Equal("""{"type": "object",""", _settings.Schema);
        Assert.False(StructuredOutput.From(_settings).IsValid);
    }

    [Fact]
    public void JsonSchema_Array_ShowsItMustBeAnObject()
    {
        var cut = RenderPanel();
        cut.Find("#response-format").Change(nameof(ResponseFormatKind.JsonSchema));

        cut.Find("#schema-text").Change("[1, 2]");

        Assert.Contains("must be a JSON object", cut.Find("#schema-error").TextContent, StringComparison.Ordinal);
    }

    [Fact]
    public void JsonSchema_Valid_SettingsCarryItWithNameAndStrict()
    {
        var cut = RenderPanel();
        cut.Find("#response-format").Change(nameof(ResponseFormatKind.JsonSchema));
        cut.Find("#schema-text").Change("[");
        Assert.NotEmpty(cut.FindAll("#schema-error"));

        cut.Find("#schema-text").Change(Schema);
        cut.Find("#schema-name").Change("weather");
        cut.Find("#schema-strict").Change(false);

        Assert.Empty(cut.FindAll("#schema-error"));
        Assert.Equal("false", cut.Find("#schema-text").GetAttribute("aria-invalid"));
        Assert.Equal(ResponseFormatKind.JsonSchema, _settings.ResponseFormat);
        var output = StructuredOutput.From(_settings).Output;
        Assert.NotNull(output);
        Assert.Equal(Schema, output.Schema);
        Assert.Equal("weather", output.SchemaName);
        Assert.False(output.Strict);
    }

    [Fact]
    public void Tools_InvalidThenNamedChoice_ValidatesAgainstTheTools()
    {
        var cut = RenderPanel();
        Assert.Empty(cut.FindAll("#tool-choice"));

        cut.Find("#tools-text").Change("""[{"type":"function"}]""");
        Assert.Contains("needs a \"function\" object", cut.Find("#tools-error").TextContent, StringComparison.Ordinal);

        cut.Find("#tools-text").Change("""[{"type":"function","function":{"name":"get_weather"}}]""");
        Assert.Empty(cut.FindAll("#tools-error"));
        cut.Find("#tool-choice").Change(nameof(ToolChoiceKind.Named));
        cut.Find("#tool-choice-name").Change("get_time");
        Assert.Equal("No tool is named 'get_time'.", cut.Find("#tools-error").TextContent);

        cut.Find("#tool-choice-name").Change("get_weather");

        Assert.Empty(cut.FindAll("#tools-error"));
        var output = StructuredOutput.From(_settings).Output!;
        Assert.Equal(ToolChoiceKind.Named, output.ToolChoice);
        Assert.Equal("get_weather", output.ToolName);
    }
}
