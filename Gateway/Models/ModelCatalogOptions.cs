using Microsoft.Extensions.Options;

namespace Gateway.Models;

/// <summary>
/// The model catalogue (section <c>Gateway:Models</c>), keyed by the public model id clients send,
/// e.g. <c>Gateway:Models:gpt-j-6b:TritonModel=fastertransformer</c>.
/// </summary>
public sealed class ModelCatalogOptions
{
    public const string SectionName = "Gateway";

    public Dictionary<string, ModelOptions> Models { get; } = new(StringComparer.Ordinal);
}

/// <summary>One catalogue entry.</summary>
public sealed class ModelOptions
{
    /// <summary>The model name in Triton's repository.</summary>
    public string TritonModel { get; set; } = "";

    /// <summary>Triton model version; empty = the server's policy.</summary>
    public string TritonModelVersion { get; set; } = "";

    /// <summary>The tensor contract: <c>fastertransformer</c> (token ids), <c>vllm</c> or <c>tensorrtllm</c> (text; one class each).</summary>
    public string Contract { get; set; } = "fastertransformer";

    /// <summary>
    /// The tokenizer: <c>gpt2</c> (GPT-2 byte-level BPE) or <c>sentencepiece:&lt;path&gt;</c> (a SentencePiece
    /// <c>tokenizer.model</c>, e.g. of a Llama model behind TensorRT-LLM). For a text contract (<c>vllm</c>) it only
    /// estimates the prompt before the call; usage is the backend's exact counts.
    /// </summary>
    public string Tokenizer { get; set; } = "gpt2";

    /// <summary>The chat template: <c>gpt-plain</c>, <c>chatml</c>, <c>zephyr</c> or <c>llama2</c>.</summary>
    public string ChatTemplate { get; set; } = "gpt-plain";

    /// <summary>
    /// How the model writes tool calls and how its answers are parsed for them: <c>hermes</c>
    /// (<c>&lt;tool_call&gt;</c> JSON; Hermes, Qwen and other chatml models), <c>llama3_json</c> or <c>mistral</c>
    /// (<c>[TOOL_CALLS]</c>), as vLLM's <c>--tool-call-parser</c> names them.
    /// </summary>
    public string ToolCallParser { get; set; } = "hermes";

    /// <summary>Prompt + completion tokens the model can hold.</summary>
    public int ContextWindow { get; set; } = 2048;

    /// <summary>
    /// Longest prompt the engine accepts (TensorRT-LLM's <c>max_input_len</c>); 0 = ContextWindow - 1.
    /// A longer prompt is refused with <c>context_length_exceeded</c> before anything is sent.
    /// </summary>
    public int MaxInputTokens { get; set; }

    /// <summary>Largest <c>max_tokens</c> a request may ask for; also the default.</summary>
    public int MaxOutputTokens { get; set; } = 512;

    /// <summary>The end-of-text token id (<c>end_id</c>).</summary>
    public int EndId { get; set; } = 50256;

    /// <summary>The start token id (<c>start_id</c>).</summary>
    public int StartId { get; set; } = 50256;

    /// <summary>The <c>owned_by</c> field of <c>/v1/models</c>.</summary>
    public string OwnedBy { get; set; } = "triton";
}

internal sealed class ModelCatalogOptionsValidator : IValidateOptions<ModelCatalogOptions>
{
    public ValidateOptionsResult Validate(string? name, ModelCatalogOptions options)
    {
        var failures = new List<string>();
        if (options.Models.Count == 0)
        {
            failures.Add("Gateway:Models must define at least one model.");
        }
        foreach (var (id, model) in options.Models)
        {
            var key = $"Gateway:Models:{id}";
            if (string.IsNullOrWhiteSpace(model.TritonModel))
            {
                failures.Add($"{key}:TritonModel is required.");
            }
            if (!Triton.Contracts.TritonContracts.IsKnown(model.Contract))
            {
                failures.Add($"{key}:Contract '{model.Contract}' is unknown (known: {string.Join(", ", Triton.Contracts.TritonContracts.Names)}).");
            }
            if (!Text.TextTokenizers.IsKnown(model.Tokenizer))
            {
                failures.Add($"{key}:Tokenizer '{model.Tokenizer}' is unknown (known: {string.Join(", ", Text.TextTokenizers.Names)}).");
            }
            else if (Text.SentencePieceTextTokenizer.IsName(model.Tokenizer) && !File.Exists(model.Tokenizer[Text.SentencePieceTextTokenizer.Prefix.Length..]))
            {
                failures.Add($"{key}:Tokenizer '{model.Tokenizer}': no SentencePiece model at that path.");
            }
            if (!Text.ChatTemplates.IsKnown(model.ChatTemplate))
            {
                failures.Add($"{key}:ChatTemplate '{model.ChatTemplate}' is unknown (known: {string.Join(", ", Text.ChatTemplates.Names)}).");
            }
            if (!Structured.ToolCallParsers.IsKnown(model.ToolCallParser))
            {
                failures.Add($"{key}:ToolCallParser '{model.ToolCallParser}' is unknown (known: {string.Join(", ", Structured.ToolCallParsers.Names)}).");
            }
            if (model.ContextWindow < 2)
            {
                failures.Add($"{key}:ContextWindow must be at least 2 (was {model.ContextWindow}).");
            }
            if (model.MaxOutputTokens < 1 || model.MaxOutputTokens >= model.ContextWindow)
            {
                failures.Add($"{key}:MaxOutputTokens must be 1..ContextWindow-1 (was {model.MaxOutputTokens}).");
            }
            if (model.MaxInputTokens < 0 || model.MaxInputTokens >= model.ContextWindow)
            {
                failures.Add($"{key}:MaxInputTokens must be 0 (= ContextWindow - 1) or 1..ContextWindow-1 (was {model.MaxInputTokens}).");
            }
            if (model.EndId < 0 || model.StartId < 0)
            {
                failures.Add($"{key}:EndId and {key}:StartId must not be negative.");
            }
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
