using System.Text.Json;
using Gateway.Grpc.Tensors;
using Triton.Inference;
using TritonEmulator.Models.Text;

namespace TritonEmulator.Models.FasterTransformer;

/// <summary>
/// The generate extension over the FasterTransformer contract: the prompt is tokenized with GPT-2
/// BPE; <c>max_tokens</c> (or <c>request_output_len</c>), <c>temperature</c>, <c>top_k</c>,
/// <c>top_p</c>, <c>repetition_penalty</c>, <c>seed</c> (or <c>random_seed</c>), <c>end_id</c>,
/// <c>stop</c> and <c>bad_words</c> (a string or an array of strings) become FT input tensors;
/// <c>priority</c> and <c>timeout</c> stay request parameters. <c>text_output</c> is the completion
/// without the prompt and without the end token.
/// </summary>
internal sealed class FasterTransformerTextGeneration(TokenLanguageModel language) : ITextGeneration
{
    public const int DefaultMaxTokens = 64;

    public (ModelInferRequest Request, ITextGenerationReader Reader) Create(GenerateInput input)
    {
        var tokenizer = language.Tokenizer;
        var prompt = tokenizer.EncodeToIds(input.TextInput).Select(static id => (uint)id).ToArray();
        if (prompt.Length == 0)
        {
            throw RequestValidator.Invalid("text_input must not be empty");
        }
        var request = new ModelInferRequest { Id = input.Id };
        AddUInt32(request, "input_ids", prompt, 1, prompt.Length);
        AddUInt32(request, "input_lengths", [(uint)prompt.Length], 1, 1);
        var maxTokens = UInt(input, "max_tokens") ?? UInt(input, "request_output_len") ?? DefaultMaxTokens;
        AddUInt32(request, "request_output_len", [maxTokens], 1, 1);
        var endId = UInt(input, "end_id") ?? FasterTransformerModel.DefaultEndId;
        AddUInt32(request, "end_id", [endId], 1, 1);
        if ((UInt(input, "top_k") ?? UInt(input, "runtime_top_k")) is { } topK)
        {
            AddUInt32(request, "runtime_top_k", [topK], 1, 1);
        }
        if ((Float(input, "top_p") ?? Float(input, "runtime_top_p")) is { } topP)
        {
            AddFloat(request, "runtime_top_p", topP);
        }
        if (Float(input, "temperature") is { } temperature)
        {
            AddFloat(request, "temperature", temperature);
        }
        if (Float(input, "repetition_penalty") is { } penalty)
        {
            AddFloat(request, "repetition_penalty", penalty);
        }
        if ((ULong(input, "seed") ?? ULong(input, "random_seed")) is { } seed)
        {
            var tensor = new ModelInferRequest.Types.InferInputTensor { Name = "random_seed", Datatype = TensorDataTypes.UInt64, Shape = { 1, 1 } };
            request.Inputs.Add(tensor);
            request.RawInputContents.Add(TensorCodec.EncodeUInt64([seed]));
        }
        AddWordList(request, "stop_words_list", Words(input, "stop"));
        AddWordList(request, "bad_words_list", Words(input, "bad_words"));
        if (input.Parameters.TryGetValue("priority", out var priority) && priority.TryGetInt64(out var level))
        {
            request.Parameters["priority"] = new InferParameter { Int64Param = level };
        }
        if (input.Parameters.TryGetValue("timeout", out var timeout) && timeout.TryGetInt64(out var micros))
        {
            request.Parameters["timeout"] = new InferParameter { Int64Param = micros };
        }
        return (request, new Reader(language, prompt.Length, endId));
    }

    private List<int[]> Words(GenerateInput input, string key)
    {
        var words = new List<int[]>();
        if (!input.Parameters.TryGetValue(key, out var value))
        {
            return words;
        }
        var texts = value.ValueKind switch
        {
            JsonValueKind.String => [value.GetString()!],
            JsonValueKind.Array => value.EnumerateArray().Select(static e => e.GetString() ?? "").ToArray(),
            JsonValueKind.Null => [],
            _ => throw RequestValidator.Invalid($"'{key}' must be a string or an array of strings"),
        };
        foreach (var text in texts)
        {
            if (text.Length > 0)
            {
                words.Add([.. language.Tokenizer.EncodeToIds(text)]);
            }
        }
        return words;
    }

    private static void AddWordList(ModelInferRequest request, string name, List<int[]> words)
    {
        if (words.Count == 0)
        {
            return;
        }
        var total = words.Sum(static w => w.Length);
        var values = new int[2 * total];
        values.AsSpan(total).Fill(-1);
        var offset = 0;
        for (var i = 0; i < words.Count; i++)
        {
            words[i].CopyTo(values, offset);
            offset += words[i].Length;
            values[total + i] = offset;
        }
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = TensorDataTypes.Int32, Shape = { 1, 2, total } });
        request.RawInputContents.Add(TensorCodec.EncodeInt32(values));
    }

    private static void AddUInt32(ModelInferRequest request, string name, uint[] values, params long[] shape)
    {
        var tensor = new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = TensorDataTypes.UInt32 };
        tensor.Shape.AddRange(shape);
        request.Inputs.Add(tensor);
        request.RawInputContents.Add(TensorCodec.EncodeUInt32(values));
    }

    private static void AddFloat(ModelInferRequest request, string name, float value)
    {
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = TensorDataTypes.Fp32, Shape = { 1, 1 } });
        request.RawInputContents.Add(TensorCodec.EncodeFloat32([value]));
    }

    private static uint? UInt(GenerateInput input, string key) =>
        input.Parameters.TryGetValue(key, out var value)
            ? value.ValueKind == JsonValueKind.Number && value.TryGetUInt32(out var v) ? v
                : throw RequestValidator.Invalid($"'{key}' must be a non-negative integer")
            : null;

    private static ulong? ULong(GenerateInput input, string key) =>
        input.Parameters.TryGetValue(key, out var value)
            ? value.ValueKind == JsonValueKind.Number && value.TryGetUInt64(out var v) ? v
                : throw RequestValidator.Invalid($"'{key}' must be a non-negative integer")
            : null;

    private static float? Float(GenerateInput input, string key) =>
        input.Parameters.TryGetValue(key, out var value)
            ? value.ValueKind == JsonValueKind.Number ? (float)value.GetDouble()
                : throw RequestValidator.Invalid($"'{key}' must be a number")
            : null;

    /// <summary>Reads row 0 of the cumulative <c>output_ids</c> and decodes what is new, holding back incomplete UTF-8.</summary>
    private sealed class Reader(TokenLanguageModel language, int promptLength, uint endId) : ITextGenerationReader
    {
        private readonly List<int> _generated = [];
        private int _emittedChars;
        private string _decoded = "";

        public int GeneratedTokens { get; private set; }

        public string Read(ModelInferResponse response)
        {
            var index = response.Outputs.ToList().FindIndex(static o => o.Name == "output_ids");
            var lengthIndex = response.Outputs.ToList().FindIndex(static o => o.Name == "sequence_length");
            if (index < 0 || lengthIndex < 0)
            {
                return "";
            }
            var ids = response.RawOutputContents[index].Span;
            var length = (int)TensorCodec.ReadUInt32(response.RawOutputContents[lengthIndex].Span, 0);
            for (var i = promptLength + GeneratedTokens; i < length; i++)
            {
                var token = TensorCodec.ReadUInt32(ids, i);
                GeneratedTokens++;
                if (token != endId)
                {
                    _generated.Add((int)token);
                }
            }
            _decoded = language.Tokenizer.Decode(_generated) ?? "";
            var stable = _decoded.Length;
            while (stable > _emittedChars && _decoded[stable - 1] == '\uFFFD')
            {
                stable--;
            }
            var delta = _decoded[_emittedChars..stable];
            _emittedChars = stable;
            return delta;
        }

        public string Flush()
        {
            var rest = _decoded[_emittedChars..];
            _emittedChars = _decoded.Length;
            return rest;
        }
    }
}
