using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Benchmarks.Faults;

/// <summary>How one request of a fault scenario ended.</summary>
internal enum FaultOutcome
{
    /// <summary>Every token, a <c>finish_reason</c> and <c>[DONE]</c>.</summary>
    Succeeded,

    /// <summary>An HTTP error status with an OpenAI error body, or an SSE error event followed by <c>[DONE]</c>.</summary>
    CleanError,

    /// <summary>Ended without <c>[DONE]</c> and without an error (reset, short body, a 200 that stops, a non-OpenAI error body).</summary>
    Silent,

    /// <summary>Connection refused: no process listened, so nothing was started.</summary>
    Refused,
}

/// <summary>One request: when it started (Stopwatch ticks) and how it ended.</summary>
internal readonly record struct FaultSample(long StartedAt, FaultOutcome Outcome, string Detail);

/// <summary>
/// Streams chat completions through the gateway and classifies each by what arrived on the wire:
/// SSE lines read one by one, nothing inferred from the gateway's side.
/// </summary>
internal sealed class FaultClient(HttpClient http, string apiKey, string model, int maxTokens)
{
    public async Task<FaultSample> StreamAsync(Uri gateway, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var body = $$$"""{"model":"{{{model}}}","messages":[{"role":"user","content":"Tell me about foxes"}],"max_tokens":{{{maxTokens}}},"stream":true,"stream_options":{"include_usage":true}}""";
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(gateway, "/v1/chat/completions")) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        }
        catch (HttpRequestException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused })
        {
            return new FaultSample(started, FaultOutcome.Refused, "connection refused");
        }
        catch (HttpRequestException ex)
        {
            return new FaultSample(started, FaultOutcome.Silent, "no response: " + ex.Message);
        }
        using (response)
        {
            try
            {
                if (!response.IsSuccessStatusCode)
                {
                    var text = await response.Content.ReadAsStringAsync(cancellationToken);
                    return IsOpenAiError(text)
                        ? new FaultSample(started, FaultOutcome.CleanError, $"{(int)response.StatusCode} {ErrorType(text)}")
                        : new FaultSample(started, FaultOutcome.Silent, $"{(int)response.StatusCode} without an OpenAI error body");
                }
                await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
                using var reader = new StreamReader(stream, Encoding.UTF8);
                return Classify(started, await ReadEventsAsync(reader, cancellationToken));
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException)
            {
                return new FaultSample(started, FaultOutcome.Silent, "reset mid-body: " + ex.Message);
            }
        }
    }

    /// <summary>The <c>data:</c> payloads of an SSE body, in order (comments and blank lines skipped); throws when the connection breaks.</summary>
    internal static async Task<List<string>> ReadEventsAsync(TextReader reader, CancellationToken cancellationToken)
    {
        var events = new List<string>();
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                events.Add(line[5..].TrimStart());
            }
        }
        return events;
    }

    /// <summary>Classifies a 200 SSE body that ended cleanly at the transport level.</summary>
    internal FaultSample Classify(long started, List<string> events)
    {
        var done = events.Count > 0 && events[^1] == "[DONE]";
        string? finish = null;
        var completionTokens = -1;
        foreach (var data in events)
        {
            if (data == "[DONE]")
            {
                continue;
            }
            using var json = JsonDocument.Parse(data);
            var root = json.RootElement;
            if (root.TryGetProperty("error", out var error))
            {
                var type = error.TryGetProperty("type", out var t) ? t.GetString() : null;
                return done
                    ? new FaultSample(started, FaultOutcome.CleanError, "error event " + type)
                    : new FaultSample(started, FaultOutcome.Silent, "error event without [DONE]");
            }
            if (root.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0
                && choices[0].TryGetProperty("finish_reason", out var reason) && reason.ValueKind == JsonValueKind.String)
            {
                finish = reason.GetString();
            }
            if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
            {
                completionTokens = usage.GetProperty("completion_tokens").GetInt32();
            }
        }
        if (done && finish is not null && completionTokens == maxTokens)
        {
            return new FaultSample(started, FaultOutcome.Succeeded, "");
        }
        return new FaultSample(started, FaultOutcome.Silent, $"200 ended: done={done} finish={finish ?? "none"} tokens={completionTokens} events={events.Count}");
    }

    private static bool IsOpenAiError(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            return json.RootElement.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object && error.TryGetProperty("message", out _);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>The error's type and the start of its message (the message says which failure it was).</summary>
    private static string ErrorType(string body)
    {
        using var json = JsonDocument.Parse(body);
        var error = json.RootElement.GetProperty("error");
        var type = error.TryGetProperty("type", out var t) ? t.GetString() : null;
        var message = error.GetProperty("message").GetString() ?? "";
        return $"{type} \"{(message.Length > 90 ? message[..90] + "…" : message)}\"";
    }
}
