using System.Runtime.CompilerServices;
using Microsoft.Extensions.Time.Testing;
using Web.Chat;
using Web.Conversations;

namespace Web.Tests.Chat;

/// <summary>Streamed <c>delta.tool_calls</c> pieces become whole calls on the answer.</summary>
public sealed class ToolCallStreamingTests
{
    private static readonly ChatPrompt Prompt = new() { Model = "m", Messages = [new PromptMessage(ChatRoles.User, "Weather in Paris and Oslo?")] };

    private sealed class ScriptedBackend(params AnswerEvent[] events) : IChatBackend
    {
        public Task<IReadOnlyList<ModelSummary>> ListModelsAsync(CancellationToken cancellationToken) => Task.FromResult<IReadOnlyList<ModelSummary>>([]);

        public async IAsyncEnumerable<AnswerEvent> StreamChatAsync(ChatPrompt prompt, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            foreach (var item in events)
            {
                await Task.Yield();
                yield return item;
            }
        }
    }

    [Fact]
    public async Task Stream_InterleavedToolCallPieces_AccumulateByIndex()
    {
        var backend = new ScriptedBackend(
            new AnswerToolCallDelta(0, "call_a", "get_weather", ""),
            new AnswerToolCallDelta(0, null, null, "{\"city\":"),
            new AnswerToolCallDelta(1, "call_b", "get_weather", null),
            new AnswerToolCallDelta(0, null, null, "\"Paris\"}"),
            new AnswerToolCallDelta(1, null, null, "{\"city\":\"Oslo\"}"),
            new AnswerFinal("tool_calls", 12, 20, 0, "m"));
        var answer = new ChatTurn { Id = "a", Role = ChatRoles.Assistant, State = TurnState.Streaming };
        var changes = 0;
        answer.Changed += () => Interlocked.Increment(ref changes);

        var outcome = await new AnswerStreamer(backend, new FakeTimeProvider()).StreamAsync(Prompt, answer, CancellationToken.None);

        Assert.Equal(TurnState.Complete, outcome.State);
        Assert.True(outcome.ReceivedText);
        Assert.Equal(
            [new ToolCall("call_a", "get_weather", "{\"city\":\"Paris\"}"), new ToolCall("call_b", "get_weather", "{\"city\":\"Oslo\"}")],
            answer.ToolCalls);
        Assert.Equal("", answer.Content);
        Assert.Equal("tool_calls", answer.Stats!.FinishReason);
        Assert.True(changes >= 6, $"Changed was raised {changes} times");
    }

    [Fact]
    public void AppendToolCall_SnapshotIsStableAndGrows()
    {
        var answer = new ChatTurn { Id = "a", Role = ChatRoles.Assistant, State = TurnState.Streaming };
        answer.AppendToolCall(0, "call_a", "get_weather", "{\"ci");
        var first = answer.ToolCalls!;
        var version = answer.Version;

        answer.AppendToolCall(0, null, null, "ty\":1}");

        Assert.Equal("{\"ci", first[0].Arguments);
        Assert.Equal("{\"city\":1}", answer.ToolCalls![0].Arguments);
        Assert.True(answer.Version > version);
    }

    [Fact]
    public void TurnWithoutToolCalls_HasNone()
    {
        var answer = new ChatTurn { Id = "a", Role = ChatRoles.Assistant };
        answer.Append("Hello");

        Assert.Null(answer.ToolCalls);
        Assert.Equal("Hello", answer.PromptText);
    }

    [Fact]
    public void PromptText_SendsCallsBackAsWhatTheModelSaid()
    {
        var answer = new ChatTurn { Id = "a", Role = ChatRoles.Assistant, ToolCalls = [new ToolCall("c", "get_weather", "{\"city\":\"Paris\"}")] };

        Assert.Equal("get_weather({\"city\":\"Paris\"})", answer.PromptText);
    }
}
