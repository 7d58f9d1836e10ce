using System.Text;
using Gateway.Grpc.Tensors;
using LLama;
using LLama.Native;
using Triton.Inference;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models.Vllm;

/// <summary>
/// One vLLM-contract request on a sequence of the model's llama.cpp context. Each scheduler step
/// <see cref="Prepare"/> adds a chunk of the prompt or the last token to the step's shared batch
/// (every running request's tokens decode in one pass, <see cref="VllmModel.Execute"/>); then
/// <see cref="Step"/> samples the next token from this request's logits and writes its response
/// (none for a prompt chunk that is not the last). Cancellation and other requests get their turn
/// between steps. The sequence is borrowed on the first step and given back when the request ends,
/// however it ends.
/// </summary>
internal sealed class VllmWork : IScheduledWork
{
    private readonly LlamaModel _model;
    private readonly ResponseStream _responses;
    private readonly string _prompt;
    private readonly LLamaToken[] _tokens;
    private readonly SamplingParameters _sampling;
    private readonly VllmOutputs _outputs;
    private readonly CompletionText _completion;
    private readonly int _maxTokens;
    private LLamaSeqId? _sequence;
    private VllmSamplingPipeline? _pipeline;
    private StreamingTokenDecoder? _decoder;
    private int _prefilled;
    private int _logitsIndex = -1;
    private int _generated;
    private int _reportedTokens;
    private LLamaToken _last;
    private float _cumulativeLogprob;
    private bool _released;
    private bool _failed;
    private readonly List<LLamaToken> _fed = [];
    private readonly Action<int, int>? _onStart;

    public VllmWork(LlamaModel model, ResponseStream responses, string prompt, LLamaToken[] tokens, SamplingParameters sampling, VllmOutputs outputs,
        Action<int, int>? onStart = null)
    {
        _onStart = onStart;
        _model = model;
        _responses = responses;
        _prompt = prompt;
        _tokens = tokens;
        _sampling = sampling;
        _outputs = outputs;
        _completion = new CompletionText(sampling.Stop);
        // A context holds prompt + completion: generation stops there with finish_reason "length".
        _maxTokens = Math.Min(sampling.MaxTokens, model.ContextSize - tokens.Length);
    }

    public int BatchSize => 1;

    public int PromptTokens => _tokens.Length;

    public long KvTokens => _tokens.Length + _maxTokens;

    public int ResponsesWritten => _responses.Written;

    /// <summary>Prompt tokens found in the sequence's KV cells (prefix caching), not evaluated again.</summary>
    public int ReusedTokens { get; private set; }

    /// <summary>Why generation ended ("stop" / "length"), or null while it runs.</summary>
    public string? FinishReason { get; private set; }

    /// <summary>
    /// Adds this step's tokens to the shared batch: the next prompt chunk, or the last sampled token.
    /// Logits are asked for only where a token is sampled next.
    /// </summary>
    public void Prepare(LLamaBatch batch)
    {
        if (_sequence is null)
        {
            Start();
        }
        var sequence = _sequence!.Value;
        _logitsIndex = -1;
        if (_prefilled < _tokens.Length)
        {
            var count = Math.Min(_model.PrefillChunk, _tokens.Length - _prefilled);
            for (var i = 0; i < count; i++)
            {
                var position = _prefilled + i;
                var last = position == _tokens.Length - 1;
                var index = batch.Add(_tokens[position], position, sequence, last);
                if (last)
                {
                    _logitsIndex = index;
                }
            }
            _prefilled += count;
        }
        else
        {
            _logitsIndex = batch.Add(_last, _tokens.Length + _generated - 1, sequence, true);
            if (_model.PrefixCaching)
            {
                _fed.Add(_last);
            }
        }
    }

    /// <summary>After the step's decode: samples the next token (unless a prompt chunk that is not the last went in) and writes its response.</summary>
    public bool Step()
    {
        if (_logitsIndex < 0)
        {
            // A prompt chunk that is not the last: nothing to sample yet.
            return false;
        }
        var token = Sample(_model.Context, _logitsIndex);
        _logitsIndex = -1;
        _generated++;
        _last = token;
        var newText = "";
        if (!_sampling.IgnoreEos && _model.IsEndOfGeneration(token))
        {
            FinishReason = "stop";
        }
        else if (_sampling.StopTokenIds.Contains((int)token))
        {
            FinishReason = "stop";
        }
        else
        {
            _decoder!.Add(token);
            newText = _decoder.Read();
            if (_completion.Append(newText))
            {
                FinishReason = "stop";
            }
        }
        if (FinishReason is null && _generated >= _maxTokens)
        {
            FinishReason = "length";
        }
        var finished = FinishReason is not null;
        if (_outputs.Stream)
        {
            var response = BuildResponse(_completion.TakeDelta(finished), prompt: false);
            if (finished)
            {
                _responses.WriteLast(response);
            }
            else
            {
                _responses.Write(response, final: false);
            }
        }
        else if (finished)
        {
            _responses.WriteLast(BuildResponse(_completion.TakeDelta(final: true), _outputs.PrependInput));
        }
        if (finished)
        {
            Release();
        }
        return finished;
    }

    public void Fail(InferenceException error)
    {
        _failed = true; // the step may have failed mid-decode: its KV cells are not trusted
        Release();
        _responses.Fail(error);
    }

    /// <summary>The tokens whose KV the sequence holds, in position order: the prompt evaluated so far, then every generated token fed back.</summary>
    private LLamaToken[] Evaluated()
    {
        var prompt = Math.Min(_prefilled, _tokens.Length);
        var evaluated = new LLamaToken[prompt + (prompt == _tokens.Length ? _fed.Count : 0)];
        _tokens.AsSpan(0, prompt).CopyTo(evaluated);
        if (prompt == _tokens.Length)
        {
            _fed.CopyTo(evaluated, prompt);
        }
        return evaluated;
    }

    private void Start()
    {
        _sequence = _model.RentSequence(_tokens, out var reused);
        // Prefix caching: the shared prompt tokens are in the sequence's KV cells already; evaluate the rest.
        _prefilled = reused;
        ReusedTokens = reused;
        _onStart?.Invoke(_tokens.Length, reused);
        _decoder = _model.CreateDecoder();
        // Penalties look at every generated token (the sampler only ever sees generated tokens).
        _pipeline = new VllmSamplingPipeline(_sampling, _model.ContextSize);
    }

    private LLamaToken Sample(LLamaContext context, int index)
    {
        var logits = context.NativeHandle.GetLogitsIth(index);
        if (_generated < _sampling.MinTokens)
        {
            // vLLM's min_tokens: end-of-sequence and stop tokens cannot be chosen before it.
            for (var id = 0; id < logits.Length; id++)
            {
                if (_model.IsEndOfGeneration(id) || _sampling.StopTokenIds.Contains(id))
                {
                    logits[id] = float.NegativeInfinity;
                }
            }
        }
        var token = _pipeline!.Sample(context.NativeHandle, index);
        if (_outputs.CumulativeLogprob)
        {
            _cumulativeLogprob += LogSoftmax(logits, (int)token);
        }
        return token;
    }

    /// <summary>log p(token) under the model's own distribution (before temperature and filters).</summary>
    internal static float LogSoftmax(ReadOnlySpan<float> logits, int token)
    {
        var max = float.NegativeInfinity;
        foreach (var l in logits)
        {
            max = Math.Max(max, l);
        }
        double sum = 0;
        foreach (var l in logits)
        {
            sum += Math.Exp(l - max);
        }
        return (float)(logits[token] - max - Math.Log(sum));
    }

    private ModelInferResponse BuildResponse(string completionText, bool prompt)
    {
        var response = _responses.NewResponse();
        var text = prompt ? _prompt + completionText : completionText;
        ResponseStream.AddOutput(response, "text_output", TensorDataTypes.Bytes, TensorCodec.EncodeStrings(text), 1);
        if (_outputs.FinishReason)
        {
            // The backend writes str(finish_reason): "None" until the sequence has finished.
            ResponseStream.AddOutput(response, "finish_reason", TensorDataTypes.Bytes, TensorCodec.EncodeStrings(FinishReason ?? "None"), 1);
        }
        if (_outputs.CumulativeLogprob)
        {
            ResponseStream.AddOutput(response, "cumulative_logprob", TensorDataTypes.Fp32, TensorCodec.EncodeFloat32([_cumulativeLogprob]), 1);
        }
        if (_outputs.Logprobs)
        {
            // Per-token logprobs are only produced when the sampling parameter 'logprobs' asks for them (not supported here).
            ResponseStream.AddOutput(response, "logprobs", TensorDataTypes.Bytes, TensorCodec.EncodeStrings("null"), 1);
        }
        if (_outputs.NumInputTokens)
        {
            ResponseStream.AddOutput(response, "num_input_tokens", TensorDataTypes.UInt32, TensorCodec.EncodeUInt32([(uint)_tokens.Length]), 1);
        }
        if (_outputs.NumOutputTokens)
        {
            // Streaming: the tokens since the previous response; otherwise all of them.
            ResponseStream.AddOutput(response, "num_output_tokens", TensorDataTypes.UInt32, TensorCodec.EncodeUInt32([(uint)(_generated - _reportedTokens)]), 1);
            _reportedTokens = _generated;
        }
        return response;
    }

    private void Release()
    {
        if (_released)
        {
            return;
        }
        _released = true;
        _pipeline?.Dispose();
        if (_sequence is { } sequence)
        {
            _model.ReturnSequence(sequence, _failed || !_model.PrefixCaching ? null : Evaluated());
        }
    }
}
