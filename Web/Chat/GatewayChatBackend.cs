using System.Runtime.CompilerServices;
using Grpc.Core;
using Grpc.Net.Client;
using Llm.Gateway.V1;
using Microsoft.Extensions.Options;

namespace Web.Chat;

/// <summary>
/// Calls the gateway's <c>llm.gateway.v1.LlmGateway</c> service with the web app's API key.
/// One <see cref="GrpcChannel"/> (HTTP/2, many concurrent streams) for the whole app; no total
/// timeout and no resilience handler, because an answer may stream for minutes.
/// </summary>
internal sealed class GatewayChatBackend : IChatBackend, IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly LlmGateway.LlmGatewayClient _client;
    private readonly Metadata _headers;
    private readonly GatewayRestChat _rest;

    public GatewayChatBackend(IOptions<GatewayClientOptions> options, GatewayRestChat rest, ILoggerFactory loggerFactory)
    {
        _rest = rest;
        _channel = GrpcChannel.ForAddress(options.Value.Address, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler
            {
                EnableMultipleHttp2Connections = true,
                PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                KeepAlivePingDelay = TimeSpan.FromSeconds(60),
                KeepAlivePingTimeout = TimeSpan.FromSeconds(30),
            },
            LoggerFactory = loggerFactory,
        });
        _client = new LlmGateway.LlmGatewayClient(_channel);
        _headers = new Metadata { { "authorization", "Bearer " + options.Value.ApiKey } };
    }

    public async Task<IReadOnlyList<ModelSummary>> ListModelsAsync(CancellationToken cancellationToken)
    {
        try
        {
            var response = await _client.ListModelsAsync(new ListModelsRequest(), _headers, cancellationToken: cancellationToken).ConfigureAwait(false);
            var models = new List<ModelSummary>(response.Models.Count);
            foreach (var model in response.Models)
            {
                models.Add(new ModelSummary(model.Id, (int)model.ContextWindow, (int)model.MaxOutputTokens));
            }
            return models;
        }
        catch (RpcException exception) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ChatException(ChatErrors.FromRpc(exception), exception);
        }
    }

    /// <summary>
    /// Plain chats stream over gRPC; a response format or tools go through the REST face
    /// (<see cref="GatewayRestChat"/>), because <c>llm.gateway.v1</c> carries neither.
    /// </summary>
    public IAsyncEnumerable<AnswerEvent> StreamChatAsync(ChatPrompt prompt, CancellationToken cancellationToken) =>
        prompt.Structured is { IsPlain: false }
            ? _rest.StreamChatAsync(prompt, cancellationToken)
            : StreamGrpcAsync(prompt, cancellationToken);

    private async IAsyncEnumerable<AnswerEvent> StreamGrpcAsync(ChatPrompt prompt, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var request = new ChatRequest { Model = prompt.Model, Sampling = new SamplingOptions() };
        foreach (var message in prompt.Messages)
        {
            request.Messages.Add(new ChatMessage { Role = message.Role, Content = message.Content });
        }
        if (prompt.Temperature is { } temperature)
        {
            request.Sampling.Temperature = temperature;
        }
        if (prompt.MaxTokens is { } maxTokens and > 0)
        {
            request.Sampling.MaxTokens = (uint)maxTokens;
        }

        // Disposing the call (leaving the loop early or on cancellation) resets the HTTP/2
        // stream, which the gateway turns into a cancelled Triton request.
        using var call = _client.StreamChat(request, _headers, cancellationToken: cancellationToken);
        var stream = call.ResponseStream;
        while (true)
        {
            GenerateEvent item;
            try
            {
                if (!await stream.MoveNext(cancellationToken).ConfigureAwait(false))
                {
                    yield break;
                }
                item = stream.Current;
            }
            catch (RpcException exception) when (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException("The answer was stopped.", exception, cancellationToken);
            }
            catch (RpcException exception)
            {
                throw new ChatException(ChatErrors.FromRpc(exception), exception);
            }

            switch (item.EventCase)
            {
                case GenerateEvent.EventOneofCase.Delta:
                    yield return new AnswerDelta(item.Delta.Text, (int)item.Delta.TokenCount);
                    break;
                case GenerateEvent.EventOneofCase.Final:
                    var final = item.Final;
                    yield return new AnswerFinal(
                        FinishReasonText(final.FinishReason),
                        (int)(final.Usage?.PromptTokens ?? 0),
                        (int)(final.Usage?.CompletionTokens ?? 0),
                        final.TimeToFirstTokenMs,
                        final.Model);
                    break;
            }
        }
    }

    private static string FinishReasonText(FinishReason reason) => reason switch
    {
        FinishReason.Stop => "stop",
        FinishReason.Length => "length",
        _ => "",
    };

    public void Dispose() => _channel.Dispose();
}
