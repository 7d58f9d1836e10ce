using System.Text;
using Gateway.Generation;
using Gateway.Structured;
using Gateway.Triton.Contracts;

namespace Gateway.OpenAi;

/// <summary>
/// How a chat answer becomes OpenAI's message: plain content, or <c>tool_calls</c> with OpenAI's
/// finish reasons (<c>tool_calls</c> for auto / required, <c>stop</c> for a named choice; <c>length</c>
/// when the budget ran out).
/// </summary>
internal static class ToolAnswers
{
    public static bool HasToolCalling(GenerationRequest request) => request.Tools is { Mode: not ToolChoiceMode.None };

    /// <summary>Call ids: <c>call_</c>, then the completion's unique part and the call's index.</summary>
    public static string CallId(string completionId, int index) =>
        string.Concat("call_", completionId.AsSpan(Math.Max(0, completionId.Length - 22)), index.ToString("D2", System.Globalization.CultureInfo.InvariantCulture));

    public static (string? Content, List<ToolCallJson>? Calls, string Finish) Shape(GenerationRequest request, string text, FinishReason? reason, string parser, string completionId)
    {
        var finish = reason == FinishReason.Length ? "length" : "stop";
        if (!HasToolCalling(request))
        {
            return (text, null, finish);
        }
        var tools = request.Tools!;
        IReadOnlyList<ParsedToolCall>? calls;
        string? content = null;
        switch (tools.Mode)
        {
            case ToolChoiceMode.Named:
                return (null, [new ToolCallJson { Id = CallId(completionId, 0), Function = new FunctionCallJson { Name = tools.Function!, Arguments = text } }], finish);
            case ToolChoiceMode.Required:
                calls = ToolCallParsers.ParseRequiredArray(text);
                if (calls is null)
                {
                    return (text, null, finish); // cut short by max_tokens: the partial JSON as content
                }
                break;
            default:
                (content, calls) = ToolCallParsers.Parse(parser, text);
                break;
        }
        if (calls.Count == 0)
        {
            return (content ?? "", null, finish);
        }
        var json = new List<ToolCallJson>(calls.Count);
        for (var i = 0; i < calls.Count; i++)
        {
            json.Add(new ToolCallJson { Id = CallId(completionId, i), Function = new FunctionCallJson { Name = calls[i].Name, Arguments = calls[i].Arguments } });
        }
        return (content, json, reason == FinishReason.Length ? "length" : "tool_calls");
    }
}
