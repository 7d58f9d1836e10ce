using System.Text;
using System.Text.Json;
using Gateway.Grpc.Tensors;
using LLama.Native;
using Triton.Inference;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models.Vllm;

/// <summary>
/// Triton's vLLM backend contract (<c>backend: "vllm"</c>) served by llama.cpp: <c>text_input</c>,
/// <c>stream</c>, <c>sampling_parameters</c> (JSON) and the <c>exclude_input_in_output</c> /
/// <c>return_*</c> flags in; <c>text_output</c> (a delta per response when streaming, else one
/// final response with prompt + completion), <c>finish_reason</c>, <c>cumulative_logprob</c>,
/// <c>num_input_tokens</c>, <c>num_output_tokens</c> out. Errors are worded as the backend words
/// them (<c>Error generating stream: …</c>). Running requests are batched like vLLM's: each
/// scheduler step is one llama.cpp decode of every request's next token or prompt chunk.
/// </summary>
internal sealed class VllmModel : ISelfConfiguredBackend, IBatchedExecution
{
    public const string BackendName = "vllm";
    public const string MaxContextsParameter = "emulator_max_contexts";
    public const string ThreadsParameter = "emulator_threads";
    public const int DefaultMaxContexts = 2;

    /// <summary>Keys of the request <c>parameters</c> map that Triton itself consumes (not sampling parameters).</summary>
    private static readonly HashSet<string> ReservedParameters = new(StringComparer.Ordinal)
    {
        "priority", "timeout", "sequence_id", "sequence_start", "sequence_end", "binary_data_output",
        ResponseStream.EnableEmptyFinalParameter, "headers",
    };

    private readonly LlamaModel _model;
    private readonly Func<ulong> _seeds;
    private readonly LLamaBatch _batch = new();

    public VllmModel(string name, LlamaModel model, ModelConfig completedConfig, SchedulerSettings scheduling, Func<ulong> seeds)
    {
        Name = name;
        _model = model;
        _seeds = seeds;
        CompletedConfig = completedConfig;
        Scheduling = scheduling;
        Timing = TimingProfile.ZeroLatency with
        {
            Name = "llama.cpp-cpu",
            KvCapacityTokens = (long)model.ContextSize * model.MaxContexts,
            GpuMemoryTotalBytes = 0,
            WeightsBytes = 0,
            KvBytesPerToken = 0,
        };
        TextGeneration = new VllmTextGeneration();
    }

    public string Name { get; }

    /// <summary>With prefix caching: called as each request starts with its prompt tokens and the tokens found cached (vLLM's prefix cache queries and hits).</summary>
    public Action<int, int>? PrefixObserved { get; init; }

    public LlamaModel Model => _model;

    public ModelConfig CompletedConfig { get; }

    public SchedulerSettings Scheduling { get; }

    public TimingProfile Timing { get; }

    public ITextGeneration TextGeneration { get; }

    /// <summary>One decode for the step: each request's tokens on its own sequence, in one batch.</summary>
    public void Execute(IReadOnlyList<IScheduledWork> works)
    {
        _batch.Clear();
        for (var i = 0; i < works.Count; i++) // per step: no enumerator boxed through the interface
        {
            ((VllmWork)works[i]).Prepare(_batch);
        }
        if (_batch.TokenCount == 0)
        {
            return;
        }
        var result = _model.Context.Decode(_batch);
        if (result != DecodeResult.Ok)
        {
            throw new InferenceException(InferenceErrorCode.Internal, $"Error generating stream: llama.cpp decode failed ({result})", FailureReason.Backend);
        }
    }

    public IScheduledWork CreateWork(ValidatedRequest request, ResponseStream responses, bool decoupled)
    {
        try
        {
            return CreateWorkCore(request, responses);
        }
        catch (FormatException exception)
        {
            throw new InferenceException(InferenceErrorCode.InvalidArgument, $"Error generating stream: {exception.Message}", FailureReason.Backend);
        }
    }

    private VllmWork CreateWorkCore(ValidatedRequest request, ResponseStream responses)
    {
        if (request.Input("embedding_request") is not null)
        {
            throw new FormatException($"Model {Name} does not support 'embed' request");
        }
        if (request.Input("image") is { ElementCount: > 0 })
        {
            throw new FormatException("image inputs are not supported: this engine runs text-only GGUF models");
        }
        var prompt = FirstString(request.Input("text_input")!);
        var stream = Flag(request, "stream") ?? false;
        var exclude = Flag(request, "exclude_input_in_output");
        // vLLM: without the input, include the prompt unless streaming; with it, include unless excluded.
        var prependInput = exclude is { } e ? !e : !stream;
        if (prependInput && stream)
        {
            throw new FormatException("When streaming, `exclude_input_in_output` = False is not allowed.");
        }
        var json = request.Input("sampling_parameters") is { } tensor ? FirstString(tensor) : ParametersJson(request.Request);
        var sampling = SamplingParameters.Parse(json);
        if (sampling.Guide is { } guide)
        {
            _model.CheckGrammar(guide.Grammar);
        }
        if (sampling.Seed is null)
        {
            sampling = sampling with { Seed = _seeds() };
        }
        var tokens = _model.Tokenize(prompt);
        if (tokens.Length == 0)
        {
            throw new FormatException("the prompt is empty");
        }
        if (tokens.Length >= _model.ContextSize)
        {
            throw new FormatException(
                $"The decoder prompt (length {tokens.Length}) is longer than the maximum model length of {_model.ContextSize}. Make sure that `max_model_len` is no smaller than the number of text tokens.");
        }
        var outputs = new VllmOutputs(
            Stream: stream,
            PrependInput: prependInput,
            FinishReason: Flag(request, "return_finish_reason") ?? false,
            CumulativeLogprob: Flag(request, "return_cumulative_logprob") ?? false,
            Logprobs: Flag(request, "return_logprobs") ?? false,
            NumInputTokens: Flag(request, "return_num_input_tokens") ?? false,
            NumOutputTokens: Flag(request, "return_num_output_tokens") ?? false);
        return new VllmWork(_model, responses, prompt, tokens, sampling, outputs, PrefixObserved);
    }

    private static string FirstString(RequestTensor tensor)
    {
        var reader = new BytesElementReader(tensor.Raw.Span);
        if (!reader.TryRead(out var element))
        {
            throw new FormatException($"input '{tensor.Name}' has no elements");
        }
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(element);
        }
        catch (DecoderFallbackException)
        {
            throw new FormatException($"input '{tensor.Name}' is not valid UTF-8");
        }
    }

    private static bool? Flag(ValidatedRequest request, string name) =>
        request.Input(name) is { ElementCount: > 0 } tensor ? tensor.Bool(0) : null;

    /// <summary>The request's own parameters as the JSON the backend reads when no <c>sampling_parameters</c> input is given.</summary>
    private static string ParametersJson(ModelInferRequest request)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var (key, value) in request.Parameters)
            {
                if (ReservedParameters.Contains(key))
                {
                    continue;
                }
                switch (value.ParameterChoiceCase)
                {
                    case InferParameter.ParameterChoiceOneofCase.BoolParam:
                        writer.WriteBoolean(key, value.BoolParam);
                        break;
                    case InferParameter.ParameterChoiceOneofCase.Int64Param:
                        writer.WriteNumber(key, value.Int64Param);
                        break;
                    case InferParameter.ParameterChoiceOneofCase.Uint64Param:
                        writer.WriteNumber(key, value.Uint64Param);
                        break;
                    case InferParameter.ParameterChoiceOneofCase.DoubleParam:
                        writer.WriteNumber(key, value.DoubleParam);
                        break;
                    case InferParameter.ParameterChoiceOneofCase.StringParam:
                        writer.WriteString(key, value.StringParam);
                        break;
                }
            }
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    /// <summary>
    /// The vLLM backend's auto-complete: the contract's inputs and outputs where the config has none
    /// of that name, <c>decoupled: true</c> and <c>max_batch_size: 0</c>.
    /// </summary>
    public static ModelConfig AutoComplete(ModelConfig config)
    {
        if (config.MaxBatchSize > 0)
        {
            throw new Scheduling.ModelLoadException(
                $"configuration specified max_batch_size {config.MaxBatchSize}, but in auto-complete-config function for model '{config.Name}' specified max_batch_size 0");
        }
        var completed = config.Clone();
        AddInput(completed, "text_input", DataType.TypeString, [1], optional: false);
        AddInput(completed, "image", DataType.TypeString, [-1]);
        AddInput(completed, "stream", DataType.TypeBool, [1]);
        AddInput(completed, "sampling_parameters", DataType.TypeString, [1]);
        AddInput(completed, "exclude_input_in_output", DataType.TypeBool, [1]);
        AddInput(completed, "return_finish_reason", DataType.TypeBool, [1]);
        AddInput(completed, "return_cumulative_logprob", DataType.TypeBool, [1]);
        AddInput(completed, "return_logprobs", DataType.TypeBool, [1]);
        AddInput(completed, "return_num_input_tokens", DataType.TypeBool, [1]);
        AddInput(completed, "return_num_output_tokens", DataType.TypeBool, [1]);
        AddInput(completed, "embedding_request", DataType.TypeString, [1]);
        AddOutput(completed, "text_output", DataType.TypeString, [-1]);
        AddOutput(completed, "finish_reason", DataType.TypeString, [-1]);
        AddOutput(completed, "cumulative_logprob", DataType.TypeFp32, [-1]);
        AddOutput(completed, "logprobs", DataType.TypeString, [-1]);
        AddOutput(completed, "num_input_tokens", DataType.TypeUint32, [1]);
        AddOutput(completed, "num_output_tokens", DataType.TypeUint32, [-1]);
        completed.ModelTransactionPolicy ??= new ModelTransactionPolicy();
        completed.ModelTransactionPolicy.Decoupled = true;
        completed.MaxBatchSize = 0;
        return completed;
    }

    private static void AddInput(ModelConfig config, string name, DataType type, long[] dims, bool optional = true)
    {
        if (config.Input.Any(i => i.Name == name))
        {
            return;
        }
        var input = new ModelInput { Name = name, DataType = type, Optional = optional };
        input.Dims.AddRange(dims);
        config.Input.Add(input);
    }

    private static void AddOutput(ModelConfig config, string name, DataType type, long[] dims)
    {
        if (config.Output.Any(o => o.Name == name))
        {
            return;
        }
        var output = new ModelOutput { Name = name, DataType = type };
        output.Dims.AddRange(dims);
        config.Output.Add(output);
    }

    public void Dispose() => _model.Dispose();
}

/// <summary>Which outputs a request asked for, and how its text is returned.</summary>
internal sealed record VllmOutputs(
    bool Stream,
    bool PrependInput,
    bool FinishReason,
    bool CumulativeLogprob,
    bool Logprobs,
    bool NumInputTokens,
    bool NumOutputTokens);
