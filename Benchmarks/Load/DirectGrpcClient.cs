using System.Diagnostics;
using Gateway.Grpc.Tensors;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Triton.Inference;

namespace Benchmarks.Load;

/// <summary>
/// The "direct" baseline: the emulator's gRPC <c>ModelStreamInfer</c>, the same call, channel
/// settings and FasterTransformer tensors the gateway sends for the same completion (the GPT-2 ids
/// of the prompt, greedy-off sampling defaults, an end id the corpus never produces). So
/// "gateway − direct" is what the gateway adds on top of its own backend call: tokenizing,
/// routing, detokenizing and the OpenAI SSE over HTTP/1.1.
/// </summary>
internal sealed class DirectGrpcClient : IDisposable
{
    /// <summary>GPT-2 ids of <c>"The quick brown fox is"</c> (the prompt <see cref="LoadClient"/> sends the gateway).</summary>
    private static readonly uint[] PromptIds = [464, 2068, 7586, 21831, 318];

    private readonly GrpcChannel _channel;
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client;

    public DirectGrpcClient(Uri emulatorGrpc)
    {
        _channel = GrpcChannel.ForAddress(emulatorGrpc, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                EnableMultipleHttp2Connections = true,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                ConnectTimeout = TimeSpan.FromSeconds(30),
                UseProxy = false,
            },
            MaxReceiveMessageSize = 16 * 1024 * 1024,
            DisposeHttpClient = true,
        });
        _client = new GRPCInferenceService.GRPCInferenceServiceClient(_channel);
    }

    private static ModelInferRequest Request(string model, int maxTokens)
    {
        var request = new ModelInferRequest { ModelName = model, Id = Guid.NewGuid().ToString("N") };
        request.Parameters["triton_enable_empty_final_response"] = new InferParameter { BoolParam = true };
        Add(request, "input_ids", TensorDataTypes.UInt32, [1, PromptIds.Length], TensorCodec.EncodeUInt32(PromptIds));
        Add(request, "input_lengths", TensorDataTypes.UInt32, [1, 1], TensorCodec.EncodeUInt32([(uint)PromptIds.Length]));
        Add(request, "request_output_len", TensorDataTypes.UInt32, [1, 1], TensorCodec.EncodeUInt32([(uint)maxTokens]));
        Add(request, "start_id", TensorDataTypes.UInt32, [1, 1], TensorCodec.EncodeUInt32([50256u]));
        Add(request, "end_id", TensorDataTypes.UInt32, [1, 1], TensorCodec.EncodeUInt32([50255u]));
        Add(request, "runtime_top_k", TensorDataTypes.UInt32, [1, 1], TensorCodec.EncodeUInt32([0u]));
        Add(request, "runtime_top_p", TensorDataTypes.Fp32, [1, 1], TensorCodec.EncodeFloat32([1f]));
        Add(request, "temperature", TensorDataTypes.Fp32, [1, 1], TensorCodec.EncodeFloat32([1f]));
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "output_ids" });
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "sequence_length" });
        return request;
    }

    private static void Add(ModelInferRequest request, string name, string datatype, long[] shape, ByteString data)
    {
        var tensor = new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = datatype };
        tensor.Shape.Add(shape);
        request.Inputs.Add(tensor);
        request.RawInputContents.Add(data);
    }

    /// <summary>
    /// One generation over <c>ModelStreamInfer</c>. TTFT: request written → first response with a
    /// new token; tokens: <c>sequence_length</c> − prompt length of the last response.
    /// <paramref name="interTokenMs"/> gets (last − first token response) ÷ (tokens − 1).
    /// </summary>
    public async Task<RequestResult> StreamAsync(string model, int maxTokens, List<double>? interTokenMs, CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        long first = 0, last = 0;
        var ttft = 0.0;
        var tokens = 0;
        var final = false;
        try
        {
            using var call = _client.ModelStreamInfer(cancellationToken: cancellationToken);
            await call.RequestStream.WriteAsync(Request(model, maxTokens), cancellationToken);
            while (await call.ResponseStream.MoveNext(cancellationToken))
            {
                var message = call.ResponseStream.Current;
                if (!string.IsNullOrEmpty(message.ErrorMessage))
                {
                    return new RequestResult(false, 0, tokens, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
                }
                var response = message.InferResponse;
                for (var i = 0; i < response.Outputs.Count && i < response.RawOutputContents.Count; i++)
                {
                    if (response.Outputs[i].Name == "sequence_length")
                    {
                        var generated = (int)TensorCodec.ReadUInt32(response.RawOutputContents[i].Span, 0) - PromptIds.Length;
                        if (generated > tokens)
                        {
                            var now = Stopwatch.GetTimestamp();
                            if (first == 0)
                            {
                                first = now;
                                ttft = Stopwatch.GetElapsedTime(start, now).TotalMilliseconds;
                            }
                            last = now;
                            tokens = generated;
                        }
                    }
                }
                if (response.Parameters.TryGetValue("triton_final_response", out var flag) && flag.BoolParam)
                {
                    final = true;
                    break;
                }
            }
            await call.RequestStream.CompleteAsync();
        }
        catch (RpcException)
        {
            return new RequestResult(false, 0, tokens, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        if (interTokenMs is not null && tokens > 1 && first != 0)
        {
            interTokenMs.Add(Stopwatch.GetElapsedTime(first, last).TotalMilliseconds / (tokens - 1));
        }
        var elapsed = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        return new RequestResult(final && tokens == maxTokens, ttft, tokens, elapsed);
    }

    public void Dispose() => _channel.Dispose();
}
