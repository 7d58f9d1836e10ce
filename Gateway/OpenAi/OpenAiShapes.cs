using System.Globalization;
using Gateway.Generation;
using Gateway.Triton.Contracts;

namespace Gateway.OpenAi;

/// <summary>The pieces of a finished generation both completion shapes (unary and SSE) write.</summary>
internal static class OpenAiShapes
{
    public static Usage ToUsage(GenerationStream stream)
    {
        var usage = stream.Usage;
        return new Usage { PromptTokens = usage.PromptTokens, CompletionTokens = usage.CompletionTokens, TotalTokens = usage.TotalTokens };
    }

    public static string FinishReasonText(FinishReason? reason) => reason == FinishReason.Length ? "length" : "stop";

    public static string Milliseconds(TimeSpan duration) => duration.TotalMilliseconds.ToString("0.###", CultureInfo.InvariantCulture);
}
