using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Benchmarks.Peers;

/// <summary>
/// A zero-cost OpenAI-compatible upstream for the proxies that need one (nginx, Portkey): fixed
/// chat-completion bodies, prebuilt bytes, a stream of <see cref="StreamTokens"/> chunks written
/// and flushed one by one (as a model server streams tokens), then <c>[DONE]</c>.
/// </summary>
internal sealed class StaticOpenAiServer : IAsyncDisposable
{
    public const int StreamTokens = 32;

    private static readonly byte[] Unary = Encoding.UTF8.GetBytes(
        """{"id":"chatcmpl-static","object":"chat.completion","created":1,"model":"gpt-j-6b","choices":[{"index":0,"message":{"role":"assistant","content":" the quick brown fox jumps over the lazy dog and runs"},"finish_reason":"length"}],"usage":{"prompt_tokens":12,"completion_tokens":16,"total_tokens":28}}""");

    private static readonly byte[] Chunk = Encoding.UTF8.GetBytes(
        "data: {\"id\":\"chatcmpl-static\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-j-6b\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" fox\"},\"finish_reason\":null}]}\n\n");

    private static readonly byte[] Last = Encoding.UTF8.GetBytes(
        "data: {\"id\":\"chatcmpl-static\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-j-6b\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n");

    private readonly WebApplication _app;

    private StaticOpenAiServer(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    public Uri Address { get; }

    public static async Task<StaticOpenAiServer> StartAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.MapPost("/v1/chat/completions", static async context =>
        {
            var body = await new StreamReader(context.Request.Body).ReadToEndAsync(context.RequestAborted);
            if (body.Contains("\"stream\":true", StringComparison.Ordinal))
            {
                context.Response.ContentType = "text/event-stream";
                for (var i = 0; i < StreamTokens; i++)
                {
                    await context.Response.Body.WriteAsync(Chunk, context.RequestAborted);
                    await context.Response.Body.FlushAsync(context.RequestAborted);
                }
                await context.Response.Body.WriteAsync(Last, context.RequestAborted);
                return;
            }
            context.Response.ContentType = "application/json";
            context.Response.ContentLength = Unary.Length;
            await context.Response.Body.WriteAsync(Unary, context.RequestAborted);
        });
        await app.StartAsync(cancellationToken);
        var address = new Uri(app.Urls.First());
        return new StaticOpenAiServer(app, address);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
