using Gateway.Grpc.Tensors;
using Triton.Inference;

namespace TritonEmulator.Tests.Infrastructure;

/// <summary>FasterTransformer GPT-J-style configs built in code, and FT requests.</summary>
internal static class TestModels
{
    public static ModelConfig FasterTransformer(string name = "fastertransformer", bool decoupled = true, int maxBatchSize = 8,
        string mode = "static", string profile = "zero-latency", Action<ModelDynamicBatching>? batching = null,
        IReadOnlyDictionary<string, string>? parameters = null)
    {
        var config = new ModelConfig
        {
            Name = name,
            Backend = "fastertransformer",
            MaxBatchSize = maxBatchSize,
            ModelTransactionPolicy = new ModelTransactionPolicy { Decoupled = decoupled },
            DynamicBatching = new ModelDynamicBatching(),
        };
        batching?.Invoke(config.DynamicBatching);
        config.Input.Add(Input("input_ids", DataType.TypeUint32, false, -1));
        config.Input.Add(Input("start_id", DataType.TypeUint32, true, 1));
        config.Input.Add(Input("end_id", DataType.TypeUint32, true, 1));
        config.Input.Add(Input("input_lengths", DataType.TypeUint32, false, 1));
        config.Input.Add(Input("request_output_len", DataType.TypeUint32, false, -1));
        config.Input.Add(Input("runtime_top_k", DataType.TypeUint32, true, 1));
        config.Input.Add(Input("runtime_top_p", DataType.TypeFp32, true, 1));
        config.Input.Add(Input("temperature", DataType.TypeFp32, true, 1));
        config.Input.Add(Input("repetition_penalty", DataType.TypeFp32, true, 1));
        config.Input.Add(Input("random_seed", DataType.TypeUint64, true, 1));
        config.Input.Add(Input("beam_width", DataType.TypeUint32, true, 1));
        config.Input.Add(Input("is_return_log_probs", DataType.TypeBool, true, 1));
        config.Input.Add(Input("bad_words_list", DataType.TypeInt32, true, 2, -1));
        config.Input.Add(Input("stop_words_list", DataType.TypeInt32, true, 2, -1));
        config.Output.Add(new ModelOutput { Name = "output_ids", DataType = DataType.TypeUint32, Dims = { -1, -1 } });
        config.Output.Add(new ModelOutput { Name = "sequence_length", DataType = DataType.TypeUint32, Dims = { -1 } });
        config.Output.Add(new ModelOutput { Name = "cum_log_probs", DataType = DataType.TypeFp32, Dims = { -1 } });
        config.Output.Add(new ModelOutput { Name = "output_log_probs", DataType = DataType.TypeFp32, Dims = { -1, -1 } });
        config.Parameters["emulator_profile"] = new ModelParameter { StringValue = profile };
        config.Parameters["emulator_batching_mode"] = new ModelParameter { StringValue = mode };
        foreach (var (key, value) in parameters ?? new Dictionary<string, string>())
        {
            config.Parameters[key] = new ModelParameter { StringValue = value };
        }
        return config;
    }

    private static ModelInput Input(string name, DataType type, bool optional, params long[] dims)
    {
        var input = new ModelInput { Name = name, DataType = type, Optional = optional };
        input.Dims.AddRange(dims);
        return input;
    }

    /// <summary>"The quick brown fox is" in GPT-2 ids.</summary>
    public static readonly uint[] Prompt = [464, 2068, 7586, 21831, 318];

    public static ModelInferRequest Request(string id, uint outputLength = 8, string model = "fastertransformer", uint[]? prompt = null,
        uint? endId = 60000, ulong? seed = 7, uint? topK = 40, int[][]? stopWords = null, int[][]? badWords = null, bool emptyFinal = false)
    {
        prompt ??= Prompt;
        var request = new ModelInferRequest { ModelName = model, Id = id };
        Add(request, "input_ids", TensorDataTypes.UInt32, TensorCodec.EncodeUInt32(prompt), 1, prompt.Length);
        Add(request, "input_lengths", TensorDataTypes.UInt32, TensorCodec.EncodeUInt32([(uint)prompt.Length]), 1, 1);
        Add(request, "request_output_len", TensorDataTypes.UInt32, TensorCodec.EncodeUInt32([outputLength]), 1, 1);
        if (endId is { } end)
        {
            Add(request, "end_id", TensorDataTypes.UInt32, TensorCodec.EncodeUInt32([end]), 1, 1);
        }
        if (seed is { } s)
        {
            Add(request, "random_seed", TensorDataTypes.UInt64, TensorCodec.EncodeUInt64([s]), 1, 1);
        }
        if (topK is { } k)
        {
            Add(request, "runtime_top_k", TensorDataTypes.UInt32, TensorCodec.EncodeUInt32([k]), 1, 1);
        }
        if (stopWords is not null)
        {
            AddWords(request, "stop_words_list", stopWords);
        }
        if (badWords is not null)
        {
            AddWords(request, "bad_words_list", badWords);
        }
        if (emptyFinal)
        {
            request.Parameters["triton_enable_empty_final_response"] = new InferParameter { BoolParam = true };
        }
        return request;
    }

    public static void Add(ModelInferRequest request, string name, string datatype, Google.Protobuf.ByteString raw, params long[] shape)
    {
        var tensor = new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = datatype };
        tensor.Shape.AddRange(shape);
        request.Inputs.Add(tensor);
        request.RawInputContents.Add(raw);
    }

    private static void AddWords(ModelInferRequest request, string name, int[][] words)
    {
        var total = Math.Max(1, words.Sum(static w => w.Length));
        var values = new int[2 * total];
        values.AsSpan(total).Fill(-1);
        var offset = 0;
        for (var i = 0; i < words.Length; i++)
        {
            words[i].CopyTo(values, offset);
            offset += words[i].Length;
            values[total + i] = offset;
        }
        Add(request, name, TensorDataTypes.Int32, TensorCodec.EncodeInt32(values), 1, 2, total);
    }

    public static uint[] OutputIds(ModelInferResponse response)
    {
        var index = response.Outputs.ToList().FindIndex(static o => o.Name == "output_ids");
        var lengthIndex = response.Outputs.ToList().FindIndex(static o => o.Name == "sequence_length");
        var ids = TensorCodec.DecodeUInt32(response.RawOutputContents[index].Span);
        var length = TensorCodec.DecodeUInt32(response.RawOutputContents[lengthIndex].Span)[0];
        return ids[..(int)length];
    }

    public static bool IsFinal(ModelInferResponse response) =>
        response.Parameters.TryGetValue("triton_final_response", out var p) && p.BoolParam;
}
