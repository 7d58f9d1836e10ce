using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Benchmarks.Load;

/// <summary>Which server a request goes to: the gateway (OpenAI completions) or the emulator directly (gRPC <c>ModelStreamInfer</c>, the gateway's own backend call).</summary>
internal enum Target
{
    Gateway,
    Direct,
}

/// <summary>What one request measured.</summary>
internal readonly record struct RequestResult(bool Ok, double TtftMs, int Tokens, double TotalMs);

/// <summary>
/// Sends completions to the gateway and reads SSE streams with a byte-level parser (no strings per
/// event), so the client's own cost stays small next to what it measures; direct requests go to
/// <see cref="DirectGrpcClient"/>. Times are Stopwatch ticks.
/// </summary>
internal sealed class LoadClient(HttpClient http, Uri gateway, DirectGrpcClient direct, string apiKey)
{
    private const string Prompt = "The quick brown fox is";
    private static readonly byte[] TextKey = "\"text\":\""u8.ToArray();
    private static readonly byte[] ContentKey = "\"content\":\""u8.ToArray();
    private static readonly byte[] CompletionTokensKey = "\"completion_tokens\":"u8.ToArray();
    private static readonly byte[] PromptTokensKey = "\"prompt_tokens\":"u8.ToArray();

    public static HttpClient CreateHttpClient() => new(new SocketsHttpHandler
    {
        MaxConnectionsPerServer = int.MaxValue,
        PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
        ConnectTimeout = TimeSpan.FromSeconds(30),
        UseProxy = false,
        AutomaticDecompression = System.Net.DecompressionMethods.None,
    })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    private HttpRequestMessage Request(string model, int maxTokens, bool stream)
    {
        var body = stream
            ? $$$"""{"model":"{{{model}}}","prompt":"{{{Prompt}}}","max_tokens":{{{maxTokens}}},"stream":true,"stream_options":{"include_usage":true}}"""
            : $$"""{"model":"{{model}}","prompt":"{{Prompt}}","max_tokens":{{maxTokens}}}""";
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(gateway, "/v1/completions")) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        return request;
    }

    private static string TritonModel(string model) =>
        model.EndsWith("-slow", StringComparison.Ordinal) ? Hosting.ModelRepository.SlowModel : Hosting.ModelRepository.FastModel;

    /// <summary>One non-streaming completion: the whole latency is its "TTFT".</summary>
    public async Task<RequestResult> CompleteAsync(Target target, int maxTokens, CancellationToken cancellationToken)
    {
        if (target == Target.Direct)
        {
            // Non-streaming through Triton is the same decoupled call read to its final response.
            var direct1 = await direct.StreamAsync(TritonModel("gpt-j-6b"), maxTokens, null, cancellationToken);
            return direct1 with { TtftMs = direct1.TotalMs };
        }
        var start = Stopwatch.GetTimestamp();
        try
        {
            using var request = Request("gpt-j-6b", maxTokens, stream: false);
            using var response = await http.SendAsync(request, cancellationToken);
            var body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
            var elapsed = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            var tokens = LastNumberAfter(body, "\"completion_tokens\":"u8);
            return new RequestResult(response.IsSuccessStatusCode && tokens == maxTokens, elapsed, tokens, elapsed);
        }
        catch (HttpRequestException)
        {
            return new RequestResult(false, 0, 0, Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
    }

    /// <summary>
    /// One stream. <paramref name="interTokenMs"/> gets the stream's time per output token after the
    /// first (first → last text event ÷ (tokens − 1)); <paramref name="onFirstToken"/> runs when the first text event arrives.
    /// </summary>
    public async Task<RequestResult> StreamAsync(Target target, string model, int maxTokens, List<double> interTokenMs, Action? onFirstToken, CancellationToken cancellationToken)
    {
        if (target == Target.Direct)
        {
            var result = await direct.StreamAsync(TritonModel(model), maxTokens, interTokenMs, cancellationToken);
            if (result.Ok)
            {
                onFirstToken?.Invoke();
            }
            return result;
        }
        using var request = Request(model, maxTokens, stream: true);
        var (streamed, _) = await ReadStreamAsync(request, TextKey, maxTokens, interTokenMs, onFirstToken, cancellationToken);
        return streamed;
    }

    /// <summary>
    /// One streamed chat completion (<c>/v1/chat/completions</c>) of one user message, greedy, with
    /// usage; the result's tokens are the usage's completion tokens, and <c>PromptTokens</c> its prompt tokens.
    /// </summary>
    public async Task<(RequestResult Result, int PromptTokens)> StreamChatAsync(string model, string userMessage, int maxTokens, List<double> interTokenMs, CancellationToken cancellationToken)
    {
        var body = new StringBuilder()
            .Append("{\"model\":").Append(JsonSerializer.Serialize(model, LoadJson.Default.String))
            .Append(",\"messages\":[{\"role\":\"user\",\"content\":").Append(JsonSerializer.Serialize(userMessage, LoadJson.Default.String))
            .Append(CultureInfo.InvariantCulture, $"}}],\"max_tokens\":{maxTokens},\"temperature\":0,\"stream\":true,\"stream_options\":{{\"include_usage\":true}}}}")
            .ToString();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(gateway, "/v1/chat/completions")) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        return await ReadStreamAsync(request, ContentKey, maxTokens, interTokenMs, null, cancellationToken);
    }

    /// <summary>
    /// Sends <paramref name="request"/> and reads its SSE stream with a byte-level parser: the first
    /// event whose <paramref name="textKey"/> carries text is the first token; usage gives the counts.
    /// Ok when the stream ended with <c>[DONE]</c>, no error and exactly <paramref name="maxTokens"/> completion tokens.
    /// </summary>
    private async Task<(RequestResult Result, int PromptTokens)> ReadStreamAsync(HttpRequestMessage request, byte[] textKey, int maxTokens,
        List<double> interTokenMs, Action? onFirstToken, CancellationToken cancellationToken)
    {
        var start = Stopwatch.GetTimestamp();
        var buffer = ArrayPool<byte>.Shared.Rent(8192);
        var ttft = 0.0;
        var tokens = 0;
        var promptTokens = 0;
        var done = false;
        var failed = false;
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                return (new RequestResult(false, 0, 0, Stopwatch.GetElapsedTime(start).TotalMilliseconds), 0);
            }
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
            var filled = 0;
            var last = 0L;
            var first = 0L;
            var count = CompletionTokensKey;
            while (!done)
            {
                if (filled == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, filled).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
                var read = await stream.ReadAsync(buffer.AsMemory(filled), cancellationToken);
                if (read == 0)
                {
                    break;
                }
                filled += read;
                var consumed = 0;
                while (true)
                {
                    var end = buffer.AsSpan(consumed, filled - consumed).IndexOf("\n\n"u8);
                    if (end < 0)
                    {
                        break;
                    }
                    var data = buffer.AsSpan(consumed, end);
                    consumed += end + 2;
                    if (data.IndexOf("\"error\""u8) >= 0)
                    {
                        failed = true;
                        done = true;
                        break;
                    }
                    var at = data.IndexOf(textKey);
                    if (at >= 0 && at + textKey.Length < data.Length && data[at + textKey.Length] != (byte)'"')
                    {
                        var now = Stopwatch.GetTimestamp();
                        if (last == 0)
                        {
                            ttft = Stopwatch.GetElapsedTime(start, now).TotalMilliseconds;
                            first = now;
                            onFirstToken?.Invoke();
                        }
                        last = now;
                    }
                    var n = LastNumberAfter(data, count);
                    if (n > 0)
                    {
                        tokens = n;
                        promptTokens = LastNumberAfter(data, PromptTokensKey);
                    }
                    if (data.SequenceEqual("data: [DONE]"u8))
                    {
                        done = true;
                    }
                }
                buffer.AsSpan(consumed, filled - consumed).CopyTo(buffer);
                filled -= consumed;
            }
            if (tokens > 1 && first != 0)
            {
                // Time per output token after the first (events can carry several tokens, or arrive in one read).
                interTokenMs.Add(Stopwatch.GetElapsedTime(first, last).TotalMilliseconds / (tokens - 1));
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            failed = true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        var ok = done && !failed && tokens == maxTokens;
        return (new RequestResult(ok, ttft, tokens, Stopwatch.GetElapsedTime(start).TotalMilliseconds), promptTokens);
    }

    private static int LastNumberAfter(ReadOnlySpan<byte> data, ReadOnlySpan<byte> key)
    {
        var at = data.LastIndexOf(key);
        if (at < 0)
        {
            return 0;
        }
        return Utf8Parser.TryParse(data[(at + key.Length)..], out int value, out _) ? value : 0;
    }
}

[JsonSerializable(typeof(string))]
internal sealed partial class LoadJson : JsonSerializerContext;
