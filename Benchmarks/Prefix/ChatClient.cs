using System.Buffers;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Benchmarks.Prefix;

/// <summary>One streamed chat completion as the client saw it.</summary>
internal readonly record struct ChatResult(bool Ok, double TtftMs, double TotalMs, int PromptTokens, int CompletionTokens, string Answer, string? Error);

/// <summary>Streams <c>/v1/chat/completions</c> (SSE) and times the first content delta.</summary>
internal sealed class ChatClient(HttpClient http, Uri gateway, string apiKey, string model, int maxTokens)
{
    public async Task<ChatResult> SendAsync(IReadOnlyList<(string Role, string Content)> messages, CancellationToken cancellationToken)
    {
        var body = new ArrayBufferWriter<byte>(16 * 1024);
        using (var json = new Utf8JsonWriter(body))
        {
            json.WriteStartObject();
            json.WriteString("model", model);
            json.WriteBoolean("stream", true);
            json.WriteStartObject("stream_options");
            json.WriteBoolean("include_usage", true);
            json.WriteEndObject();
            json.WriteNumber("max_tokens", maxTokens);
            json.WriteNumber("temperature", 0);
            json.WriteStartArray("messages");
            foreach (var (role, content) in messages)
            {
                json.WriteStartObject();
                json.WriteString("role", role);
                json.WriteString("content", content);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(gateway, "/v1/chat/completions"))
        {
            Content = new ByteArrayContent(body.WrittenMemory.ToArray()) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } },
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        var start = Stopwatch.GetTimestamp();
        double ttft = -1;
        var answer = new StringBuilder();
        int prompt = 0, completion = 0;
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            if (!response.IsSuccessStatusCode)
            {
                return new ChatResult(false, 0, Stopwatch.GetElapsedTime(start).TotalMilliseconds, 0, 0, "", $"HTTP {(int)response.StatusCode}");
            }
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
            var done = false;
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    continue;
                }
                var data = line.AsMemory(6);
                if (data.Span.SequenceEqual("[DONE]"))
                {
                    done = true;
                    break;
                }
                using var document = JsonDocument.Parse(data);
                var root = document.RootElement;
                if (root.TryGetProperty("error", out var error))
                {
                    return new ChatResult(false, ttft, Stopwatch.GetElapsedTime(start).TotalMilliseconds, 0, 0, "", error.GetProperty("message").GetString());
                }
                if (root.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0
                    && choices[0].TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var content)
                    && content.GetString() is { Length: > 0 } text)
                {
                    if (ttft < 0)
                    {
                        ttft = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                    }
                    answer.Append(text);
                }
                if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
                {
                    prompt = usage.GetProperty("prompt_tokens").GetInt32();
                    completion = usage.GetProperty("completion_tokens").GetInt32();
                }
            }
            var total = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            return new ChatResult(done && ttft >= 0, ttft < 0 ? total : ttft, total, prompt, completion, answer.ToString(), done ? null : "stream ended without [DONE]");
        }
        catch (HttpRequestException ex)
        {
            return new ChatResult(false, 0, Stopwatch.GetElapsedTime(start).TotalMilliseconds, 0, 0, "", ex.Message);
        }
    }
}
