using System.Text.Json;
using Web.Chat;
using Web.Conversations;

namespace Web.Tests.Conversations;

/// <summary>The localStorage format: tool calls and JSON answers added without breaking what was saved before.</summary>
public sealed class ConversationJsonTests
{
    [Fact]
    public void SavedBeforeToolCalls_ReadsAsBefore()
    {
        const string old = """
            {"id":"c1","title":"Hi","systemPrompt":"","updatedAt":"2025-01-01T12:00:00+00:00","turns":[
              {"id":"1","role":"user","content":"Hi","state":"Complete","stats":null,"note":null},
              {"id":"2","role":"assistant","content":"Hello","state":"Complete","stats":{"timeToFirstTokenMs":5,"tokensPerSecond":1,"promptTokens":3,"completionTokens":1,"finishReason":"stop","model":"m"},"note":null}]}
            """;

        var conversation = JsonSerializer.Deserialize(old, ConversationJsonContext.Default.Conversation)!;

        Assert.Equal(2, conversation.Turns.Count);
        Assert.Equal("Hello", conversation.Turns[1].Content);
        Assert.Null(conversation.Turns[1].ToolCalls);
        Assert.Null(conversation.Turns[1].Format);
    }

    [Fact]
    public void TurnWithoutToolCalls_WritesNoNewFields()
    {
        var conversation = new Conversation { Id = "c1", Turns = [new ChatTurn { Id = "2", Role = ChatRoles.Assistant, Content = "Hello" }] };

        var json = JsonSerializer.Serialize(conversation, ConversationJsonContext.Default.Conversation);

        Assert.DoesNotContain("toolCalls", json, StringComparison.Ordinal);
        Assert.DoesNotContain("format", json, StringComparison.Ordinal);
    }

    [Fact]
    public void ToolCallsAndJsonFormat_RoundTrip()
    {
        var turn = new ChatTurn { Id = "2", Role = ChatRoles.Assistant, Format = ContentFormats.Json, Content = "{\"a\":1}", State = TurnState.Complete };
        turn.AppendToolCall(0, "call_a", "get_weather", "{\"city\":\"Paris\"}");
        var conversation = new Conversation { Id = "c1", Turns = [turn] };

        var json = JsonSerializer.Serialize(conversation, ConversationJsonContext.Default.Conversation);
        var back = JsonSerializer.Deserialize(json, ConversationJsonContext.Default.Conversation)!;

        Assert.Contains("\"toolCalls\":[{\"id\":\"call_a\",\"name\":\"get_weather\",\"arguments\":", json, StringComparison.Ordinal);
        Assert.Equal(ContentFormats.Json, back.Turns[0].Format);
        Assert.Equal([new ToolCall("call_a", "get_weather", "{\"city\":\"Paris\"}")], back.Turns[0].ToolCalls);
    }

    [Fact]
    public void SettingsSavedBeforeStructuredOutput_ReadAsTextWithNoTools()
    {
        var settings = JsonSerializer.Deserialize("""{"model":"m","temperature":0.5,"maxTokens":100}""", ConversationJsonContext.Default.ChatSettings)!;

        Assert.Equal(ResponseFormatKind.Text, settings.ResponseFormat);
        Assert.Equal("", settings.Tools);
        Assert.Equal("", settings.Schema);
        Assert.Equal(ChatSettings.DefaultSchemaName, settings.SchemaName);
        Assert.True(settings.SchemaStrict);
        Assert.Equal(ToolChoiceKind.Auto, settings.ToolChoice);
        Assert.True(StructuredOutput.From(settings).Output!.IsPlain);
    }

    [Fact]
    public void Settings_StructuredFields_RoundTrip()
    {
        var settings = new ChatSettings { Model = "m", ResponseFormat = ResponseFormatKind.JsonSchema, SchemaName = "w", Schema = "{\"type\":\"object\"}", SchemaStrict = false, Tools = "[]", ToolChoice = ToolChoiceKind.Named, ToolChoiceName = "f" };

        var json = JsonSerializer.Serialize(settings, ConversationJsonContext.Default.ChatSettings);

        Assert.Contains("\"responseFormat\":\"JsonSchema\"", json, StringComparison.Ordinal);
        Assert.Equal(settings, JsonSerializer.Deserialize(json, ConversationJsonContext.Default.ChatSettings));
    }
}
