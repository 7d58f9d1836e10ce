using System.Diagnostics;
using System.Globalization;
using Gateway.Grpc.Tensors;
using Gateway.Text;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Triton.Inference;

namespace Benchmarks.Load;

/// <summary>
/// The "direct" baseline for a <c>backend: "vllm"</c> model: Triton's gRPC <c>ModelStreamInfer</c>
/// with the tensors the gateway's vLLM contract sends for a one-message chat: the prompt rendered
/// with the model's chat template, <c>stream</c> true, <c>sampling_parameters</c> with
/// <c>max_tokens</c>, temperature 0 and the template's stop strings, the input left out of the
/// output, and finish reason and token counts asked for.
/// </summary>
internal sealed class DirectVllmClient : IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client;

    public DirectVllmClient(Uri emulatorGrpc)
    {
        _channel = GrpcChannel.ForAddress(emulatorGrpc, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan, UseProxy = false },
            DisposeHttpClient = true,
        });
        _client = new GRPCInferenceService.GRPCInferenceServiceClient(_channel);
    }

    private static ModelInferRequest Request(string model, string chatTemplate, string userMessage, int maxTokens, string? structuredOutputs)
    {
        var template = ChatTemplates.Get(chatTemplate);
        var prompt = template.Render([new ChatTurn("user", userMessage)]);
        var stop = string.Join(',', template.StopStrings.Select(static s => System.Text.Json.JsonSerializer.Serialize(s, LoadJson.Default.String)));
        var structured = structuredOutputs is null ? "" : ",\"structured_outputs\":" + System.Text.Json.JsonSerializer.Serialize(structuredOutputs, LoadJson.Default.String);
        var sampling = string.Create(CultureInfo.InvariantCulture, $$"""{"max_tokens":{{maxTokens}},"temperature":0,"stop":[{{stop}}]{{structured}}}""");
        var request = new ModelInferRequest { ModelName = model, Id = Guid.NewGuid().ToString("N") };
        Add(request, "text_input", "BYTES", TensorCodec.EncodeStrings(prompt));
        Add(request, "stream", "BOOL", TensorCodec.EncodeBool([true]));
        Add(request, "sampling_parameters", "BYTES", TensorCodec.EncodeStrings(sampling));
        Add(request, "exclude_input_in_output", "BOOL", TensorCodec.EncodeBool([true]));
        Add(request, "return_finish_reason", "BOOL", TensorCodec.EncodeBool([true]));
        Add(request, "return_num_input_tokens", "BOOL", TensorCodec.EncodeBool([true]));
        Add(request, "return_num_output_tokens", "BOOL", TensorCodec.EncodeBool([true]));
        return request;
    }

    private static void Add(ModelInferRequest request, string name, string datatype, ByteString data)
    {
        var tensor = new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = datatype };
        tensor.Shape.Add(1);
        request.Inputs.Add(tensor);
        request.RawInputContents.Add(data);
    }

    /// <summary>
    /// One generation. TTFT: request written → first response with text; tokens: the sum of
    /// <c>num_output_tokens</c>; <paramref name="interTokenMs"/> gets (last − first text response) ÷ (tokens − 1).
    /// Ok when the final response came with no error and exactly <paramref name="maxTokens"/> tokens.
    /// </summary>
    /// <param name="structuredOutputs">vLLM's <c>structured_outputs</c> (a JSON string), or null for free text.</param>
    public async Task<(RequestResult Result, int PromptTokens)> StreamAsync(string model, string chatTemplate, string userMessage, int maxTokens,
        List<double> interTokenMs, CancellationToken cancellationToken, string? structuredOutputs = null)
    {
        var start = Stopwatch.GetTimestamp();
        long first = 0, last = 0;
        var ttft = 0.0;
        var tokens = 0;
        var promptTokens = 0;
        var final = false;
        try
        {
            using var call = _client.ModelStreamInfer(cancellationToken: cancellationToken);
            await call.RequestStream.WriteAsync(Request(model, chatTemplate, userMessage, maxTokens, structuredOutputs), cancellationToken);
            while (await call.ResponseStream.MoveNext(cancellationToken))
            {
                var message = call.ResponseStream.Current;
                if (!string.IsNullOrEmpty(message.ErrorMessage))
                {
                    return (new RequestResult(false, 0, tokens, Stopwatch.GetElapsedTime(start).TotalMilliseconds), promptTokens);
                }
                var response = message.InferResponse;
                for (var i = 0; i < response.Outputs.Count && i < response.RawOutputContents.Count; i++)
                {
                    var raw = response.RawOutputContents[i].Span;
                    switch (response.Outputs[i].Name)
                    {
                        case "text_output" when raw.Length > 4: // a BYTES element: 4-byte length, then the text
                            var now = Stopwatch.GetTimestamp();
                            if (first == 0)
                            {
                                first = now;
                                ttft = Stopwatch.GetElapsedTime(start, now).TotalMilliseconds;
                            }
                            last = now;
                            break;
                        case "num_output_tokens":
                            tokens += (int)TensorCodec.ReadUInt32(raw, 0);
                            break;
                        case "num_input_tokens":
                            promptTokens = (int)TensorCodec.ReadUInt32(raw, 0);
                            break;
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
            return (new RequestResult(false, 0, tokens, Stopwatch.GetElapsedTime(start).TotalMilliseconds), promptTokens);
        }
        if (tokens > 1 && first != 0)
        {
            interTokenMs.Add(Stopwatch.GetElapsedTime(first, last).TotalMilliseconds / (tokens - 1));
        }
        return (new RequestResult(final && tokens == maxTokens, ttft, tokens, Stopwatch.GetElapsedTime(start).TotalMilliseconds), promptTokens);
    }

    public void Dispose() => _channel.Dispose();
}
