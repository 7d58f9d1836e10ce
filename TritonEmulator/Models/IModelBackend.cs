using System.Text.Json;
using Triton.Inference;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models;

/// <summary>A backend kind (Triton's <c>backend:</c>): turns validated requests into scheduled work.</summary>
internal interface IModelBackend
{
    /// <summary>Backend-specific checks and parsing; throws <see cref="InferenceException"/> worded like the real backend.</summary>
    IScheduledWork CreateWork(ValidatedRequest request, ResponseStream responses, bool decoupled);

    /// <summary>The text-in/text-out face for the generate extension, or null when the model has none.</summary>
    ITextGeneration? TextGeneration { get; }
}

/// <summary>Maps the generate extension's text and parameters onto a model's tensors and back.</summary>
internal interface ITextGeneration
{
    /// <summary>The tensors for a prompt, and a reader that turns the responses back into text.</summary>
    (ModelInferRequest Request, ITextGenerationReader Reader) Create(GenerateInput input);
}

/// <summary>Follows one request's responses and turns them into text (deltas never split UTF-8).</summary>
internal interface ITextGenerationReader
{
    /// <summary>The new text a response adds ("" while a multi-byte character is incomplete).</summary>
    string Read(ModelInferResponse response);

    /// <summary>Text held back at the end (an incomplete character, flushed as U+FFFD by the decoder).</summary>
    string Flush();

    int GeneratedTokens { get; }
}

/// <summary>A generate request: the prompt and its parameters (JSON numbers, strings, booleans or string arrays).</summary>
internal sealed record GenerateInput(string Id, string TextInput, IReadOnlyDictionary<string, JsonElement> Parameters);

/// <summary>Parses a backend name into its implementation.</summary>
internal interface IModelBackendFactory
{
    IModelBackend? Create(ModelConfig config);
}
