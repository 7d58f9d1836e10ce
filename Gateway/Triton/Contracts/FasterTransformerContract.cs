using Gateway.Triton.Wire;

namespace Gateway.Triton.Contracts;

/// <summary>
/// The FasterTransformer <c>fastertransformer</c> model called with token ids (decoupled mode).
/// <list type="bullet">
/// <item>Inputs (batch 1): <c>input_ids</c> UINT32 [1,L], <c>input_lengths</c> UINT32 [1,1],
/// <c>request_output_len</c> UINT32 [1,1], <c>start_id</c>/<c>end_id</c> UINT32 [1,1],
/// <c>runtime_top_k</c> UINT32, <c>runtime_top_p</c>/<c>temperature</c> FP32, and when asked
/// <c>repetition_penalty</c> FP32, <c>random_seed</c> UINT64, <c>stop_words_list</c> INT32 [1,2,N].</item>
/// <item>OpenAI mapping: <c>temperature</c> (default 1) → <c>temperature</c>; temperature 0 means
/// greedy: <c>runtime_top_k=1</c>, <c>temperature=1</c>. <c>top_p</c> (default 1) →
/// <c>runtime_top_p</c>; <c>top_k</c> (extension, default 0 = off) → <c>runtime_top_k</c>;
/// <c>seed</c> → <c>random_seed</c> (two's complement for negatives); presence and frequency
/// penalty → <c>repetition_penalty = 2^((presence_penalty + frequency_penalty) / 4)</c>, so 0 → 1
/// (off), the OpenAI extremes ±2 each → 2 and 0.5 (FT's penalty is multiplicative).</item>
/// <item>Responses are cumulative: <c>output_ids[0,0,:sequence_length]</c> holds the prompt and
/// every token so far; only ids past the last seen length are new. The end is
/// <c>triton_final_response=true</c> (Triton ≥ 23.06, requested with
/// <c>triton_enable_empty_final_response</c>); without that flag (older Triton) the end is the
/// end id or <c>sequence_length</c> reaching prompt + <c>request_output_len</c>.</item>
/// </list>
/// </summary>
internal sealed class FasterTransformerContract : ITritonContract
{
    public string Name => TritonContracts.FasterTransformer;

    /// <summary>FasterTransformer samples with no grammar or logits processor: no structured outputs.</summary>
    public bool SupportsGuidedDecoding => false;

    public TritonRequest CreateRequest(TritonGenerationInput input)
    {
        var request = TritonContracts.NewStreamRequest(input, 4 * input.PromptIds.Count + 128);
        var mapped = MapSampling(input.Sampling);
        ReadOnlySpan<long> one = [1, 1];

        request.AddUInt32Row("input_ids", input.PromptIds);
        request.AddUInt32("input_lengths", one, (uint)input.PromptIds.Count);
        request.AddUInt32("request_output_len", one, (uint)input.MaxTokens);
        request.AddUInt32("start_id", one, (uint)input.StartId);
        request.AddUInt32("end_id", one, (uint)input.EndId);
        request.AddUInt32("runtime_top_k", one, mapped.TopK);
        request.AddFp32("runtime_top_p", one, mapped.TopP);
        request.AddFp32("temperature", one, mapped.Temperature);
        if (mapped.RepetitionPenalty is { } penalty)
        {
            request.AddFp32("repetition_penalty", one, penalty);
        }
        if (mapped.RandomSeed is { } seed)
        {
            request.AddUInt64("random_seed", one, seed);
        }
        if (input.StopWordIds.Count > 0)
        {
            var (words, length) = EncodeWordList(input.StopWordIds);
            request.AddInt32s("stop_words_list", [1, 2, length], words);
        }

        request.AddOutput("output_ids");
        request.AddOutput("sequence_length");
        return request;
    }

    public ITritonResponseDecoder CreateDecoder(TritonGenerationInput input) =>
        new Decoder(input.PromptIds.Count, input.MaxTokens, input.EndId);

    /// <summary>OpenAI sampling → FT runtime values (see the class summary).</summary>
    internal static FtSampling MapSampling(SamplingParameters sampling)
    {
        var temperature = sampling.Temperature ?? 1.0;
        var topK = (uint)(sampling.TopK ?? 0);
        if (temperature == 0)
        {
            topK = 1;
            temperature = 1.0;
        }
        float? penalty = null;
        var presence = sampling.PresencePenalty ?? 0;
        var frequency = sampling.FrequencyPenalty ?? 0;
        if (presence != 0 || frequency != 0)
        {
            penalty = (float)Math.Pow(2, (presence + frequency) / 4);
        }
        ulong? seed = sampling.Seed is { } s ? unchecked((ulong)s) : null;
        return new FtSampling(topK, (float)(sampling.TopP ?? 1.0), (float)temperature, penalty, seed);
    }

    /// <summary>
    /// FT's <c>[2, N]</c> word list for one batch item: row 0 every phrase's ids one after another
    /// (padded with 0), row 1 the cumulative end offsets (padded with -1); N ≥ 1.
    /// </summary>
    internal static (int[] Flat, int Length) EncodeWordList(IReadOnlyList<IReadOnlyList<int>> phrases)
    {
        var total = 0;
        foreach (var phrase in phrases)
        {
            total += phrase.Count;
        }
        var length = Math.Max(1, Math.Max(total, phrases.Count));
        var flat = new int[2 * length];
        Array.Fill(flat, -1, length, length);
        var at = 0;
        for (var p = 0; p < phrases.Count; p++)
        {
            foreach (var id in phrases[p])
            {
                flat[at++] = id;
            }
            flat[length + p] = at;
        }
        return (flat, length);
    }

    internal readonly record struct FtSampling(uint TopK, float TopP, float Temperature, float? RepetitionPenalty, ulong? RandomSeed);

    private sealed class Decoder(int promptLength, int maxTokens, int endId) : ITritonResponseDecoder
    {
        private readonly int _promptLength = promptLength;
        private int _consumed = promptLength;
        private bool _ended;

        public bool StreamsText => false;

        /// <summary>Reads only the ids past the last seen length: O(new tokens) per response, O(L) per stream.</summary>
        public TritonStep Decode(TritonResponse response, TritonOutput output)
        {
            int idsIndex = -1, lengthIndex = -1;
            for (var i = 0; i < response.OutputCount; i++)
            {
                if (response.NameIs(i, "output_ids"u8))
                {
                    idsIndex = i;
                }
                else if (response.NameIs(i, "sequence_length"u8))
                {
                    lengthIndex = i;
                }
            }
            var sequenceLength = _consumed;
            if (idsIndex >= 0 && lengthIndex >= 0 && !_ended)
            {
                var ids = response.Raw(idsIndex);
                var lastDimension = response.LastDimension(idsIndex);
                var rowLength = lastDimension >= 0 ? (int)Math.Min(lastDimension, int.MaxValue) : ids.Length / sizeof(uint);
                sequenceLength = (int)RawTensor.UInt32(response.Raw(lengthIndex), 0);
                var end = Math.Min(sequenceLength, Math.Min(rowLength, ids.Length / sizeof(uint)));
                for (var i = _consumed; i < end; i++)
                {
                    var id = (int)RawTensor.UInt32(ids, i);
                    if (id == endId)
                    {
                        _ended = true;
                        break;
                    }
                    output.Tokens.Add(id);
                }
                _consumed = Math.Max(_consumed, end);
            }
            var isFinal = response.FinalFlag ?? (_ended || sequenceLength >= _promptLength + maxTokens);
            return new TritonStep(isFinal, _ended);
        }
    }
}
