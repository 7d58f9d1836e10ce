using System.Text;
using Gateway.Triton.Wire;

namespace Gateway.Triton.Contracts;

/// <summary>
/// TensorRT-LLM's user-facing model (tensorrtllm_backend's inflight_batcher_llm <c>ensemble</c>, or the
/// <c>tensorrt_llm_bls</c> model with the same inputs): text in, text out, <c>max_batch_size</c> &gt; 0
/// so every tensor is <c>[1, 1]</c> (batch 1). Triton's preprocessing model tokenizes, tensorrt_llm
/// generates, postprocessing detokenizes each response.
/// <list type="bullet">
/// <item>Inputs: <c>text_input</c> BYTES (the rendered prompt), <c>max_tokens</c> INT32,
/// <c>stream</c> BOOL = true (one response per engine iteration, <c>text_output</c> = the new tokens'
/// text), <c>exclude_input_in_output</c> BOOL = true, <c>return_log_probs</c> BOOL = true (so
/// <c>output_log_probs</c> holds one entry per new token: the exact completion count),
/// <c>end_id</c> / <c>pad_id</c> INT32 from the catalogue. Request parameter
/// <c>triton_enable_empty_final_response</c> = true.</item>
/// <item>OpenAI mapping: <c>temperature</c> → <c>temperature</c> FP32, 0 = greedy (<c>top_k</c> = 1,
/// temperature 1); <c>top_p</c> → <c>top_p</c> FP32; <c>top_k</c> (extension, 0 = off) → <c>top_k</c>
/// INT32; <c>top_p</c> is always sent when sampling (default 1), because TensorRT-LLM samples greedily
/// when top-k and top-p are both 0; <c>seed</c> → <c>seed</c> UINT64 (two's complement for negatives); <c>presence_penalty</c>,
/// <c>frequency_penalty</c> → the same names, FP32 (TensorRT-LLM's are additive like OpenAI's);
/// <c>stop</c> (+ the template's stop strings) → <c>stop_words</c> BYTES [1, N], which preprocessing
/// tokenizes into <c>stop_words_list</c>. Unset values are not sent, so the engine's defaults apply.
/// A structured output / forced tool call → <c>guided_decoding_guide_type</c> = <c>json_schema</c> and
/// <c>guided_decoding_guide</c> = the schema (BYTES).</item>
/// <item>Responses: <c>text_output</c> [1, 1] is the delta; the end is <c>triton_final_response</c>.
/// The ensemble reports no finish reason: reaching <c>max_tokens</c> is <c>length</c>, anything
/// else (end id, stop word) <c>stop</c>. The prompt count is the gateway's own, exact with the
/// model's tokenizer (GPT-2 BPE for GPT-J).</item>
/// </list>
/// </summary>
internal sealed class TensorRtLlmContract : ITritonContract
{
    public string Name => TritonContracts.TensorRtLlm;

    public TritonRequest CreateRequest(TritonGenerationInput input)
    {
        var request = TritonContracts.NewStreamRequest(input, 2 * input.Prompt.Length + 256);
        ReadOnlySpan<long> one = [1, 1];
        var sampling = input.Sampling;
        request.AddString("text_input", one, input.Prompt);
        request.AddInt32("max_tokens", one, input.MaxTokens);
        request.AddBool("stream", one, true);
        request.AddBool("exclude_input_in_output", one, true);
        request.AddBool("return_log_probs", one, true);
        request.AddInt32("end_id", one, input.EndId);
        request.AddInt32("pad_id", one, input.EndId);
        if (sampling.Temperature == 0)
        {
            request.AddInt32("top_k", one, 1);
            request.AddFp32("temperature", one, 1f);
        }
        else
        {
            if (sampling.Temperature is { } temperature)
            {
                request.AddFp32("temperature", one, (float)temperature);
            }
            if (sampling.TopK is > 0 and var topK)
            {
                request.AddInt32("top_k", one, topK);
            }
            // TensorRT-LLM samples greedily when top_k and top_p are both 0 (their defaults), so
            // OpenAI's default top_p of 1 (the whole distribution) is always sent.
            request.AddFp32("top_p", one, (float)(sampling.TopP ?? 1.0));
        }
        if (sampling.PresencePenalty is { } presence and not 0)
        {
            request.AddFp32("presence_penalty", one, (float)presence);
        }
        if (sampling.FrequencyPenalty is { } frequency and not 0)
        {
            request.AddFp32("frequency_penalty", one, (float)frequency);
        }
        if (sampling.Seed is { } seed)
        {
            request.AddUInt64("seed", one, unchecked((ulong)seed));
        }
        if (input.StopStrings.Count > 0)
        {
            request.AddStrings("stop_words", [1, input.StopStrings.Count], input.StopStrings);
        }
        if (input.Guide is { } guide)
        {
            // tensorrtllm_backend's guided decoding (xgrammar): guide type json | json_schema | regex | ebnf_grammar.
            // Its "json" is any JSON value, so json_object is sent as the schema of any object.
            request.AddString("guided_decoding_guide_type", one, "json_schema");
            request.AddString("guided_decoding_guide", one,
                guide.Kind == Structured.GuideKind.JsonSchema && guide.Schema is { } schema ? schema : AnyObjectSchema);
        }
        request.AddOutput("text_output");
        request.AddOutput("output_log_probs");
        return request;
    }

    /// <summary>The guide of <c>response_format: json_object</c>.</summary>
    internal const string AnyObjectSchema = """{"type":"object"}""";

    public ITritonResponseDecoder CreateDecoder(TritonGenerationInput input) => new Decoder();

    private sealed class Decoder : ITritonResponseDecoder
    {
        public bool StreamsText => true;

        public TritonStep Decode(TritonResponse response, TritonOutput output)
        {
            var tokens = 0;
            var sawLogProbs = false;
            var sawText = false;
            for (var i = 0; i < response.OutputCount; i++)
            {
                if (response.NameIs(i, "text_output"u8))
                {
                    sawText |= RawTensor.AppendUtf8Strings(response.Raw(i), output.Text);
                }
                else if (response.NameIs(i, "output_log_probs"u8))
                {
                    // [1, beams, new tokens] FP32: one log-probability per token of this response.
                    sawLogProbs = true;
                    tokens = response.Raw(i).Length / sizeof(float);
                }
            }
            if (!sawLogProbs && sawText)
            {
                tokens = 1; // a backend without log-probs: one token per streamed response
            }
            return new TritonStep(response.FinalFlag ?? false, OutputTokens: tokens);
        }
    }
}
