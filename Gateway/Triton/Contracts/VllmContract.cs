using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Gateway.Triton.Wire;

namespace Gateway.Triton.Contracts;

/// <summary>
/// Triton's vLLM backend (<c>vllm</c>): text in, text out, decoupled, <c>max_batch_size: 0</c> (no
/// batch dimension).
/// <list type="bullet">
/// <item>Inputs: <c>text_input</c> BYTES [1] (the rendered prompt), <c>stream</c> BOOL [1] = true,
/// <c>sampling_parameters</c> BYTES [1] (a JSON object), <c>exclude_input_in_output</c> BOOL [1] = true,
/// <c>return_finish_reason</c>, <c>return_num_input_tokens</c>, <c>return_num_output_tokens</c>
/// BOOL [1] = true. Request parameter <c>triton_enable_empty_final_response</c> = true.</item>
/// <item>OpenAI mapping (vLLM <c>SamplingParams</c> names, numbers as JSON numbers): <c>max_tokens</c>
/// always; <c>temperature</c> as given (vLLM's 0 is greedy, like OpenAI's); <c>top_p</c>;
/// <c>top_k</c> (0 = off → vLLM's -1); <c>seed</c>; <c>presence_penalty</c>, <c>frequency_penalty</c>
/// (the same additive semantics in vLLM and OpenAI); <c>stop</c> (client's stop strings plus the chat
/// template's). Unset values are left out, so vLLM's defaults (the same as OpenAI's) apply.</item>
/// <item>Responses: <c>text_output</c> is the delta since the previous response;
/// <c>num_output_tokens</c> the tokens since the previous response; <c>num_input_tokens</c> the exact
/// prompt length; <c>finish_reason</c> <c>"None"</c> until the end, then <c>stop</c> / <c>length</c>.
/// The end is <c>triton_final_response=true</c>; without it (older Triton) a finish reason other
/// than <c>None</c>.</item>
/// </list>
/// </summary>
internal sealed class VllmContract : ITritonContract
{
    public string Name => TritonContracts.Vllm;

    public bool SupportsStructuralTags => true;

    public TritonRequest CreateRequest(TritonGenerationInput input)
    {
        var sampling = SamplingJson(input);
        var request = TritonContracts.NewStreamRequest(input, 2 * (input.Prompt.Length + sampling.Length) + 64);
        // max_batch_size 0: shape [1], no batch dimension.
        ReadOnlySpan<long> one = [1];
        request.AddString("text_input", one, input.Prompt);
        request.AddBool("stream", one, true);
        request.AddString("sampling_parameters", one, sampling);
        request.AddBool("exclude_input_in_output", one, true);
        request.AddBool("return_finish_reason", one, true);
        request.AddBool("return_num_input_tokens", one, true);
        request.AddBool("return_num_output_tokens", one, true);
        request.AddOutput("text_output");
        request.AddOutput("finish_reason");
        request.AddOutput("num_input_tokens");
        request.AddOutput("num_output_tokens");
        return request;
    }

    public ITritonResponseDecoder CreateDecoder(TritonGenerationInput input) => new Decoder();

    /// <summary>The <c>sampling_parameters</c> JSON (see the class summary).</summary>
    internal static string SamplingJson(TritonGenerationInput input)
    {
        var sampling = input.Sampling;
        var json = new VllmSamplingJson
        {
            MaxTokens = input.MaxTokens,
            Temperature = sampling.Temperature,
            TopP = sampling.TopP,
            TopK = sampling.TopK is { } k ? (k == 0 ? -1 : k) : null,
            Seed = sampling.Seed,
            PresencePenalty = sampling.PresencePenalty,
            FrequencyPenalty = sampling.FrequencyPenalty,
            Stop = input.StopStrings.Count > 0 ? input.StopStrings : null,
            StructuredOutputs = StructuredOutputsJson(input.Guide),
        };
        return JsonSerializer.Serialize(json, VllmJsonContext.Default.VllmSamplingJson);
    }

    /// <summary>
    /// vLLM's <c>StructuredOutputsParams</c> as Triton's vllm_backend (25.12 on, vLLM ≥ 0.11) reads the
    /// <c>structured_outputs</c> key: a JSON <em>string</em> it parses into the params
    /// (<c>StructuredOutputsParams(**json.loads(value))</c>). <c>json</c> holds the schema,
    /// <c>json_object</c> asks for any object; <c>disable_any_whitespace</c> keeps blanks out of the
    /// JSON so max_tokens is not spent on them.
    /// </summary>
    internal static string? StructuredOutputsJson(Structured.OutputGuide? guide)
    {
        if (guide is null)
        {
            return null;
        }
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (guide.Kind == Structured.GuideKind.StructuralTag && guide.Schema is { } tag)
            {
                // StructuredOutputsParams.structural_tag is itself a JSON string (xgrammar's structural tag).
                json.WriteString("structural_tag", tag);
            }
            else if (guide.Kind == Structured.GuideKind.JsonSchema && guide.Schema is { } schema)
            {
                json.WritePropertyName("json");
                json.WriteRawValue(schema);
            }
            else
            {
                json.WriteBoolean("json_object", true);
            }
            json.WriteBoolean("disable_any_whitespace", true);
            json.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private sealed class Decoder : ITritonResponseDecoder
    {
        public bool StreamsText => true;

        public TritonStep Decode(TritonResponse response, TritonOutput output)
        {
            var outputTokens = 0;
            int? promptTokens = null;
            FinishReason? finish = null;
            var finished = false;
            for (var i = 0; i < response.OutputCount; i++)
            {
                if (response.NameIs(i, "text_output"u8))
                {
                    RawTensor.AppendUtf8Strings(response.Raw(i), output.Text);
                }
                else if (response.NameIs(i, "finish_reason"u8))
                {
                    var reason = RawTensor.FirstUtf8(response.Raw(i));
                    finished = !(reason.IsEmpty || reason.SequenceEqual("None"u8));
                    finish = reason.SequenceEqual("stop"u8) ? FinishReason.Stop
                        : reason.SequenceEqual("length"u8) ? FinishReason.Length
                        : null;
                }
                else if (response.NameIs(i, "num_input_tokens"u8))
                {
                    promptTokens = (int)RawTensor.UInt32(response.Raw(i), 0);
                }
                else if (response.NameIs(i, "num_output_tokens"u8))
                {
                    outputTokens = (int)RawTensor.UInt32(response.Raw(i), 0);
                }
            }
            var isFinal = response.FinalFlag ?? finished;
            return new TritonStep(isFinal, OutputTokens: outputTokens, PromptTokens: promptTokens, FinishReason: finish);
        }
    }
}

/// <summary>vLLM <c>SamplingParams</c> fields the gateway sets; nulls are left out.</summary>
internal sealed class VllmSamplingJson
{
    public int MaxTokens { get; init; }
    public double? Temperature { get; init; }
    public double? TopP { get; init; }
    public int? TopK { get; init; }
    public long? Seed { get; init; }
    public double? PresencePenalty { get; init; }
    public double? FrequencyPenalty { get; init; }
    public IReadOnlyList<string>? Stop { get; init; }

    /// <summary>A JSON string (not an object): the backend json.loads it into StructuredOutputsParams.</summary>
    public string? StructuredOutputs { get; init; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(VllmSamplingJson))]
internal sealed partial class VllmJsonContext : JsonSerializerContext;
