using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using TritonEmulator.Tests.Infrastructure;
using static TritonEmulator.Tests.Infrastructure.TestModels;

namespace TritonEmulator.Tests.Protocols;

public sealed class HttpProtocolTests : IAsyncLifetime
{
    private TestEmulator _emulator = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _emulator = await TestEmulator.StartAsync([FasterTransformer(), FasterTransformer(name: "ft_unary", decoupled: false)], profile: "zero-latency");
        _http = new HttpClient { BaseAddress = _emulator.Endpoints.Http };
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _emulator.DisposeAsync();
    }

    [Fact]
    public async Task HealthMetadataAndConfig()
    {
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("/v2/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("/v2/health/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("/v2/models/fastertransformer/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("/health")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("/alive")).StatusCode);
        using var server = JsonDocument.Parse(await _http.GetStringAsync("/v2"));
        Assert.Equal("triton", server.RootElement.GetProperty("name").GetString());
        using var metadata = JsonDocument.Parse(await _http.GetStringAsync("/v2/models/fastertransformer"));
        Assert.Equal("UINT32", metadata.RootElement.GetProperty("inputs")[0].GetProperty("datatype").GetString());
        var config = await _http.GetStringAsync("/v2/models/fastertransformer/config");
        Assert.Contains("\"max_batch_size\": 8", config);
        Assert.Contains("\"TYPE_UINT32\"", config);
        using var index = JsonDocument.Parse(await (await _http.PostAsync("/v2/repository/index", null)).Content.ReadAsStringAsync());
        Assert.Equal(2, index.RootElement.GetArrayLength());
    }

    [Fact]
    public async Task Endpoints_AnswerOnlyOnTheirOwnPort()
    {
        using var metricsPort = new HttpClient { BaseAddress = _emulator.Endpoints.Metrics };
        Assert.Equal(HttpStatusCode.NotFound, (await metricsPort.GetAsync("/v2/health/live")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("/metrics")).StatusCode);
    }

    [Fact]
    public async Task Infer_JsonTensors_OnNonDecoupledModel()
    {
        var body = new
        {
            id = "j",
            inputs = new object[]
            {
                new { name = "input_ids", datatype = "UINT32", shape = new[] { 1, 5 }, data = Prompt },
                new { name = "input_lengths", datatype = "UINT32", shape = new[] { 1, 1 }, data = new[] { 5 } },
                new { name = "request_output_len", datatype = "UINT32", shape = new[] { 1, 1 }, data = new[] { 4 } },
                new { name = "end_id", datatype = "UINT32", shape = new[] { 1, 1 }, data = new[] { 60000 } },
            },
        };
        var response = await _http.PostAsJsonAsync("/v2/models/ft_unary/infer", body);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var sequenceLength = json.RootElement.GetProperty("outputs").EnumerateArray().Single(o => o.GetProperty("name").GetString() == "sequence_length");
        Assert.Equal(9, sequenceLength.GetProperty("data")[0].GetInt32());

        var decoupled = await _http.PostAsJsonAsync("/v2/models/fastertransformer/infer", body);
        Assert.Equal(HttpStatusCode.BadRequest, decoupled.StatusCode);
        Assert.Contains("decoupled", await decoupled.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Generate_ReturnsTextOutput_Deterministically()
    {
        var body = new { text_input = "The weather in the city", parameters = new { max_tokens = 24, temperature = 0.8, top_k = 20, seed = 5, end_id = 60000 } };
        var first = await _http.PostAsJsonAsync("/v2/models/fastertransformer/generate", body);
        var second = await _http.PostAsJsonAsync("/v2/models/fastertransformer/generate", body);
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        using var a = JsonDocument.Parse(await first.Content.ReadAsStringAsync());
        using var b = JsonDocument.Parse(await second.Content.ReadAsStringAsync());
        var text = a.RootElement.GetProperty("text_output").GetString();
        Assert.False(string.IsNullOrWhiteSpace(text));
        Assert.Equal(text, b.RootElement.GetProperty("text_output").GetString());
        Assert.Equal(24, a.RootElement.GetProperty("generated_tokens").GetInt32());
    }

    [Theory]
    [InlineData("Hello there")]
    [InlineData("The weather today")]
    [InlineData("User: hi\nAssistant:")]
    public async Task Generate_PromptEndingInUnseenContext_StillAnswersWithWords(string prompt)
    {
        // Greedy with the model's real end id: an unseen context backs off to sentence starts, never to the end of text.
        var body = new { text_input = prompt, parameters = new { max_tokens = 8 } };
        var response = await _http.PostAsJsonAsync("/v2/models/fastertransformer/generate", body);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.False(string.IsNullOrWhiteSpace(json.RootElement.GetProperty("text_output").GetString()));
        Assert.True(json.RootElement.GetProperty("generated_tokens").GetInt32() > 1);
    }

    [Fact]
    public async Task GenerateStream_SendsOneEventPerToken_ThatAddUpToGenerate()
    {
        var body = new { text_input = "The server", parameters = new { max_tokens = 30, top_k = 40, seed = 11, end_id = 60000 } };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v2/models/fastertransformer/generate_stream") { Content = JsonContent.Create(body) };
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var events = new List<JsonElement>();
        using (var reader = new StreamReader(await response.Content.ReadAsStreamAsync()))
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    events.Add(JsonDocument.Parse(line["data: ".Length..]).RootElement.Clone());
                }
            }
        }
        Assert.Equal(30, events.Count);
        Assert.True(events[^1].GetProperty("triton_final_response").GetBoolean());
        var streamed = string.Concat(events.Select(e => e.GetProperty("text_output").GetString()));
        Assert.DoesNotContain('\uFFFD', streamed);

        var whole = await _http.PostAsJsonAsync("/v2/models/fastertransformer/generate", body);
        using var json = JsonDocument.Parse(await whole.Content.ReadAsStringAsync());
        Assert.Equal(json.RootElement.GetProperty("text_output").GetString(), streamed);
    }

    [Fact]
    public async Task GenerateStream_MultiTokenCharacters_AreNeverSplit()
    {
        // Greedy from a corpus context whose next word is an emoji spanning several GPT-2 tokens.
        var body = new { text_input = "Engineers like to measure things. They draw small charts", parameters = new { max_tokens = 6, top_k = 1, end_id = 60000 } };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v2/models/fastertransformer/generate_stream") { Content = JsonContent.Create(body) };
        using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var deltas = new List<string>();
        using (var reader = new StreamReader(await response.Content.ReadAsStreamAsync()))
        {
            while (await reader.ReadLineAsync() is { } line)
            {
                if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    deltas.Add(JsonDocument.Parse(line["data: ".Length..]).RootElement.GetProperty("text_output").GetString()!);
                }
            }
        }
        var text = string.Concat(deltas);
        Assert.Contains("📈", text);
        Assert.Contains("", deltas);
        Assert.DoesNotContain('\uFFFD', text);
    }

    [Fact]
    public async Task Generate_Errors_AreJsonWithAStatus()
    {
        var missing = await _http.PostAsync("/v2/models/fastertransformer/generate_stream", new StringContent("{}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        Assert.Contains("\"error\"", await missing.Content.ReadAsStringAsync());
        var unknown = await _http.PostAsync("/v2/models/nope/generate", new StringContent("{\"text_input\":\"x\"}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, unknown.StatusCode);
    }
}
