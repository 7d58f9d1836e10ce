using Gateway.Grpc.Tensors;
using Google.Protobuf;
using Triton.Inference;
using TritonEmulator.Models.Text;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models.FasterTransformer;

/// <summary>
/// The FasterTransformer GPT/GPT-J backend contract (<c>backend: "fastertransformer"</c>): token ids in
/// (<c>input_ids</c>, <c>input_lengths</c>, <c>request_output_len</c>, sampling inputs, stop and bad
/// word lists), cumulative <c>output_ids</c> + <c>sequence_length</c> + log-probs out; one response per
/// generated token when decoupled. The tokens come from the shipped token model.
/// </summary>
internal sealed class FasterTransformerModel(TokenLanguageModel language) : IModelBackend
{
    public const string BackendName = "fastertransformer";
    public const uint DefaultEndId = TokenLanguageModel.EndOfText;

    public ITextGeneration TextGeneration { get; } = new FasterTransformerTextGeneration(language);

    public IScheduledWork CreateWork(ValidatedRequest request, ResponseStream responses, bool decoupled)
    {
        var batch = request.BatchSize;
        var label = request.Label;
        var inputIds = request.Input("input_ids") ?? throw RequestValidator.Invalid($"{label} input 'input_ids' is required");
        var inputLengths = request.Input("input_lengths") ?? throw RequestValidator.Invalid($"{label} input 'input_lengths' is required");
        var outputLengths = request.Input("request_output_len") ?? throw RequestValidator.Invalid($"{label} input 'request_output_len' is required");
        var width = inputIds.Shape.Length >= 2 ? inputIds.Shape[^1] : inputIds.ElementCount;
        var rows = new FasterTransformerRow[batch];
        var beamWidth = request.Input("beam_width");
        for (var b = 0; b < batch; b++)
        {
            if (beamWidth is not null && beamWidth.UInt32(PerRow(beamWidth, b, batch)) is var beams and not 1)
            {
                throw RequestValidator.Invalid($"{label} beam_width {beams} is not supported: this engine emulates sampling only (beam_width 1)");
            }
            var promptLength = (long)inputLengths.UInt32(PerRow(inputLengths, b, batch));
            if (promptLength < 1 || promptLength > width)
            {
                throw RequestValidator.Invalid($"{label} input_lengths[{b}] is {promptLength} but must be between 1 and the input_ids width {width}");
            }
            var outputLength = outputLengths.UInt32(PerRow(outputLengths, b, batch));
            if (outputLength < 1)
            {
                throw RequestValidator.Invalid($"{label} request_output_len[{b}] must be at least 1");
            }
            var prompt = new uint[promptLength];
            for (var i = 0; i < promptLength; i++)
            {
                prompt[i] = inputIds.UInt32(b * width + i);
            }
            var settings = new SamplingSettings(
                Scalar(request.Input("runtime_top_k"), b, batch, static (t, i) => t.UInt32(i), 0u),
                Scalar(request.Input("runtime_top_p"), b, batch, static (t, i) => t.Float32(i), 0f),
                Scalar(request.Input("temperature"), b, batch, static (t, i) => t.Float32(i), 1f),
                Scalar(request.Input("repetition_penalty"), b, batch, static (t, i) => t.Float32(i), 1f));
            var seed = request.Input("random_seed") is { } seedTensor
                ? seedTensor.UInt64(PerRow(seedTensor, b, batch))
                : SplitMix64.SeedFrom(prompt);
            var endId = Scalar(request.Input("end_id"), b, batch, static (t, i) => t.UInt32(i), DefaultEndId);
            var badWords = WordLists.Decode(request.Input("bad_words_list"), b, label, "bad_words_list");
            var stopWords = WordLists.Decode(request.Input("stop_words_list"), b, label, "stop_words_list");
            rows[b] = new FasterTransformerRow(prompt, (int)outputLength, endId, stopWords, new TokenSampler(language, settings, seed, badWords));
        }
        return new FasterTransformerWork(request, responses, rows, decoupled);
    }

    private static long PerRow(RequestTensor tensor, int row, int batch)
    {
        var count = tensor.ElementCount;
        if (count == 0)
        {
            throw RequestValidator.Invalid($"input '{tensor.Name}' has no elements");
        }
        return count < batch ? 0 : row * (count / batch);
    }

    private static T Scalar<T>(RequestTensor? tensor, int row, int batch, Func<RequestTensor, long, T> read, T fallback) =>
        tensor is null || tensor.ElementCount == 0 ? fallback : read(tensor, PerRow(tensor, row, batch));
}

/// <summary>The state of one batch row: prompt + generated ids, log-probs, end conditions.</summary>
internal sealed class FasterTransformerRow(uint[] prompt, int outputLength, uint endId, IReadOnlyList<int[]> stopWords, TokenSampler sampler)
{
    private readonly uint[] _ids = CreateIds(prompt, outputLength);
    private readonly float[] _logProbs = new float[outputLength];

    // The ids again as output_ids' wire bytes (UINT32 little-endian), appended once per token. The
    // prefix never changes and the buffer never grows (its length is prompt + output from the
    // start), so every response wraps a slice of it without a copy: O(L) per stream, not O(L²).
    private byte[]? _wire;

    // sequence_length's wire bytes, one UINT32 per step at its own offset (written once, never
    // overwritten), so each response wraps its 4 bytes instead of encoding a new array.
    private byte[]? _lengths;

    public int PromptLength { get; } = prompt.Length;

    public int OutputLength => outputLength;

    public int Length { get; private set; } = prompt.Length;

    public int Generated => Length - PromptLength;

    public bool Finished { get; private set; }

    public float CumulativeLogProbability { get; private set; }

    public ReadOnlySpan<uint> Ids => _ids.AsSpan(0, Length);

    public ReadOnlySpan<float> LogProbabilities => _logProbs.AsSpan(0, Generated);

    public uint EndId => endId;

    public void Step()
    {
        if (Finished)
        {
            return;
        }
        var token = (uint)sampler.Next(Ids, out var logProbability);
        _logProbs[Generated] = logProbability;
        if (_wire is not null)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(_wire.AsSpan(Length * sizeof(uint)), token);
        }
        _ids[Length++] = token;
        CumulativeLogProbability += logProbability;
        Finished = token == endId || Generated >= outputLength || EndsWithStopWord();
    }

    /// <summary>
    /// <c>output_ids</c>' raw bytes for a batch of one: prompt and every token so far, wrapping the
    /// row's own append-only buffer (no copy; earlier responses keep their shorter slices).
    /// </summary>
    public ByteString WireIds()
    {
        if (_wire is null)
        {
            _wire = new byte[_ids.Length * sizeof(uint)];
            for (var i = 0; i < Length; i++)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(_wire.AsSpan(i * sizeof(uint)), _ids[i]);
            }
        }
        return UnsafeByteOperations.UnsafeWrap(_wire.AsMemory(0, Length * sizeof(uint)));
    }

    /// <summary><c>sequence_length</c>'s raw bytes for a batch of one: the row's length now, from an append-only buffer.</summary>
    public ByteString WireLength()
    {
        _lengths ??= new byte[(outputLength + 1) * sizeof(uint)];
        var at = Generated * sizeof(uint);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(_lengths.AsSpan(at), (uint)Length);
        return UnsafeByteOperations.UnsafeWrap(_lengths.AsMemory(at, sizeof(uint)));
    }

    private bool EndsWithStopWord()
    {
        var ids = Ids;
        foreach (var word in stopWords)
        {
            if (word.Length > Generated)
            {
                continue;
            }
            var matches = true;
            for (var i = 0; i < word.Length; i++)
            {
                if (ids[ids.Length - word.Length + i] != (uint)word[i])
                {
                    matches = false;
                    break;
                }
            }
            if (matches)
            {
                return true;
            }
        }
        return false;
    }

    private static uint[] CreateIds(uint[] prompt, int outputLength)
    {
        var ids = new uint[prompt.Length + outputLength];
        prompt.CopyTo(ids, 0);
        return ids;
    }
}

/// <summary>One FasterTransformer request in the engine: all rows step together; a response per step when decoupled.</summary>
internal sealed class FasterTransformerWork(ValidatedRequest request, ResponseStream responses, FasterTransformerRow[] rows, bool decoupled)
    : IScheduledWork
{
    public int BatchSize => rows.Length;

    public int PromptTokens { get; } = rows.Sum(static row => row.PromptLength);

    public long KvTokens { get; } = rows.Sum(static row => (long)row.PromptLength + row.OutputLength);

    public int ResponsesWritten => responses.Written;

    public bool Step()
    {
        var finished = true;
        foreach (var row in rows)
        {
            row.Step();
            finished &= row.Finished;
        }
        if (decoupled)
        {
            var response = BuildResponse();
            if (finished)
            {
                responses.WriteLast(response);
            }
            else
            {
                responses.Write(response, final: false);
            }
        }
        else if (finished)
        {
            responses.Write(BuildResponse(), final: true);
        }
        return finished;
    }

    public void Fail(InferenceException error) => responses.Fail(error);

    // Shared by every batch-of-one response, like ResponseStream's final flags: messages are never
    // mutated once written.
    private static readonly ModelInferResponse.Types.InferOutputTensor SequenceLengthOfOne =
        new() { Name = "sequence_length", Datatype = TensorDataTypes.UInt32, Shape = { 1, 1 } };

    private ModelInferResponse BuildResponse()
    {
        var response = responses.NewResponse();
        var batch = rows.Length;
        var maxLength = 0;
        var maxGenerated = 0;
        foreach (var row in rows)
        {
            maxLength = Math.Max(maxLength, row.Length);
            maxGenerated = Math.Max(maxGenerated, row.Generated);
        }
        if (request.WantsOutput("output_ids") && batch == 1)
        {
            ResponseStream.AddOutput(response, "output_ids", TensorDataTypes.UInt32, rows[0].WireIds(), 1, 1, maxLength);
        }
        else if (request.WantsOutput("output_ids"))
        {
            var ids = new uint[batch * maxLength];
            for (var b = 0; b < batch; b++)
            {
                var row = rows[b];
                row.Ids.CopyTo(ids.AsSpan(b * maxLength));
                ids.AsSpan(b * maxLength + row.Length, maxLength - row.Length).Fill(row.EndId);
            }
            ResponseStream.AddOutput(response, "output_ids", TensorDataTypes.UInt32, TensorCodec.EncodeUInt32(ids), batch, 1, maxLength);
        }
        if (request.WantsOutput("sequence_length") && batch == 1)
        {
            response.Outputs.Add(SequenceLengthOfOne);
            response.RawOutputContents.Add(rows[0].WireLength());
        }
        else if (request.WantsOutput("sequence_length"))
        {
            var lengths = new uint[batch];
            for (var b = 0; b < batch; b++)
            {
                lengths[b] = (uint)rows[b].Length;
            }
            ResponseStream.AddOutput(response, "sequence_length", TensorDataTypes.UInt32, TensorCodec.EncodeUInt32(lengths), batch, 1);
        }
        if (request.WantsOutput("cum_log_probs"))
        {
            var cumulative = new float[batch];
            for (var b = 0; b < batch; b++)
            {
                cumulative[b] = rows[b].CumulativeLogProbability;
            }
            ResponseStream.AddOutput(response, "cum_log_probs", TensorDataTypes.Fp32, TensorCodec.EncodeFloat32(cumulative), batch, 1);
        }
        if (request.WantsOutput("output_log_probs"))
        {
            var logProbs = new float[batch * maxGenerated];
            for (var b = 0; b < batch; b++)
            {
                rows[b].LogProbabilities.CopyTo(logProbs.AsSpan(b * maxGenerated));
            }
            ResponseStream.AddOutput(response, "output_log_probs", TensorDataTypes.Fp32, TensorCodec.EncodeFloat32(logProbs), batch, 1, maxGenerated);
        }
        return response;
    }
}
