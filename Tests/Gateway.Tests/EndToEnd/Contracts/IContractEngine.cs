using Gateway.Tests.Functional;
using OpenAI.Chat;

namespace Gateway.Tests.EndToEnd.Contracts;

/// <summary>
/// One Triton tensor contract end to end: a real engine serving a model under that contract, the
/// gateway in front of it, and a way to ask the engine itself (over Triton's protocol with the
/// contract's own tensors, no gateway code) what it answers, so the gateway's answers can be
/// compared with the engine's.
/// </summary>
internal interface IContractEngine
{
    /// <summary>The contract's name in the catalogue (<c>fastertransformer</c>, <c>vllm</c>, <c>tensorrtllm</c>).</summary>
    string Contract { get; }

    GatewayHost Gateway { get; }

    /// <summary>A catalogue model served under the contract.</summary>
    string Model { get; }

    /// <summary>The chat template of <see cref="Model"/>.</summary>
    string ChatTemplate { get; }

    /// <summary>A user message whose greedy answer has several tokens and none of the template's stop strings.</summary>
    string ChatPrompt { get; }

    /// <summary>A catalogue model (same contract) on which a request runs for seconds, so it can be abandoned mid-stream.</summary>
    string LongModel { get; }

    /// <summary>Chat options that keep <see cref="LongModel"/> generating for seconds.</summary>
    ChatCompletionOptions LongRunningOptions();

    /// <summary>
    /// The engine's own greedy answer to <paramref name="prompt"/> (at most <paramref name="maxTokens"/>
    /// tokens, ended at the first of <paramref name="stop"/>), asked directly over Triton's gRPC protocol.
    /// </summary>
    Task<EngineAnswer> GreedyAsync(string prompt, int maxTokens, IReadOnlyList<string> stop);

    /// <summary>Requests of <see cref="LongModel"/>'s Triton model the engine counts as cancelled, from its statistics.</summary>
    Task<ulong> CancelledAsync();
}

/// <summary>What the engine answered: the text, <c>stop</c> or <c>length</c>, and its token counts in the contract's own terms.</summary>
internal sealed record EngineAnswer(string Text, string FinishReason, int PromptTokens, int CompletionTokens);
