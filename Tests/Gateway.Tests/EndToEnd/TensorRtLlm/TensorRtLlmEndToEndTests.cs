using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Gateway.Tests.EndToEnd.Contracts;
using Gateway.Tests.Functional;

namespace Gateway.Tests.EndToEnd.TensorRtLlm;

/// <summary>The gateway over TensorRT-LLM's ensemble: the catalogue, discovery, limits and metrics the router reads.</summary>
public sealed class TensorRtLlmEndToEndTests(TensorRtLlmHost host) : IClassFixture<TensorRtLlmHost>
{
    private HttpRequestMessage Post(string path, object body)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, new Uri(host.Gateway.Endpoints.Rest, path)) { Content = JsonContent.Create(body) };
        request.Headers.Authorization = new("Bearer", TestKeys.Full);
        return request;
    }

    [Fact]
    public async Task Models_ListOnlyTheUserFacingModels_NeverTheComposingOnes()
    {
        // Discovery has read the index when the ensemble-only list is stable; wait for a read to pass.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(host.Gateway.Endpoints.Rest, "v1/models"));
        request.Headers.Authorization = new("Bearer", TestKeys.Full);
        using var response = await host.Gateway.Http.SendAsync(request, timeout.Token);
        var ids = (await response.Content.ReadFromJsonAsync<JsonElement>(timeout.Token)).GetProperty("data").EnumerateArray().Select(static m => m.GetProperty("id").GetString()).ToList();

        Assert.Contains(TensorRtLlmHost.Model, ids);
        foreach (var composing in (string[])["preprocessing", "tensorrt_llm", "postprocessing", "ensemble"])
        {
            Assert.DoesNotContain(composing, ids);
        }
    }

    [Fact]
    public async Task Discovery_RecognisesTheEnsembleByItsMetadata_AndNotItsComposingModels()
    {
        var client = new global::Triton.Inference.GRPCInferenceService.GRPCInferenceServiceClient(host.TritonChannel);
        var options = new global::Gateway.Models.ModelDiscoveryOptions();
        var found = new List<string>();
        foreach (var name in (string[])["ensemble", "preprocessing", "tensorrt_llm", "postprocessing"])
        {
            var config = (await client.ModelConfigAsync(new() { Name = name })).Config;
            var metadata = await client.ModelMetadataAsync(new() { Name = name });
            if (global::Gateway.Models.TritonModelDiscovery.ToCatalogEntry(config, metadata, options) is { } entry)
            {
                Assert.Equal("tensorrtllm", entry.Contract);
                found.Add(name);
            }
        }

        Assert.Equal(["ensemble"], found);
    }

    [Fact]
    public async Task PromptLongerThanTheEnginesMaxInput_Is400ContextLengthExceeded_BeforeTritonSeesIt()
    {
        var before = await SuccessCountAsync("preprocessing") + await FailureCountAsync("preprocessing");
        using var request = Post("v1/completions", new { model = TensorRtLlmHost.Model, prompt = string.Concat(Enumerable.Repeat("word ", 1100)).TrimEnd(), max_tokens = 4 });

        using var response = await host.Gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal("context_length_exceeded", error.GetProperty("code").GetString());
        Assert.Contains("1024", error.GetProperty("message").GetString());
        Assert.Equal(before, await SuccessCountAsync("preprocessing") + await FailureCountAsync("preprocessing"));
    }

    [Fact]
    public async Task UnsupportedParameter_Is400NamingIt()
    {
        using var request = Post("v1/chat/completions", new { model = TensorRtLlmHost.Model, logprobs = true, messages = new[] { new { role = "user", content = "hi" } } });

        using var response = await host.Gateway.Http.SendAsync(request);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("error");
        Assert.Equal(("unsupported_parameter", "logprobs"), (error.GetProperty("code").GetString(), error.GetProperty("param").GetString()));
    }

    [Fact]
    public async Task Completions_StreamedOrNot_AreTheEnginesGreedyAnswerWithExactUsage()
    {
        const string prompt = "The weather today is";
        var expected = await ((IContractEngine)host).GreedyAsync(prompt, 16, []);
        Assert.True(expected.CompletionTokens > 3, expected.Text);

        using var whole = Post("v1/completions", new { model = TensorRtLlmHost.Model, prompt, temperature = 0, max_tokens = 16 });
        using var wholeResponse = await host.Gateway.Http.SendAsync(whole);
        var body = await wholeResponse.Content.ReadAsStringAsync();
        Assert.True(wholeResponse.StatusCode == HttpStatusCode.OK, body);
        var root = JsonDocument.Parse(body).RootElement;
        var choice = root.GetProperty("choices")[0];
        Assert.Equal(expected.Text, choice.GetProperty("text").GetString());
        Assert.Equal(expected.FinishReason, choice.GetProperty("finish_reason").GetString());
        Assert.Equal(expected.PromptTokens, root.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(expected.CompletionTokens, root.GetProperty("usage").GetProperty("completion_tokens").GetInt32());

        using var streamed = Post("v1/completions", new { model = TensorRtLlmHost.Model, prompt, temperature = 0, max_tokens = 16, stream = true, stream_options = new { include_usage = true } });
        using var streamResponse = await host.Gateway.Http.SendAsync(streamed, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, streamResponse.StatusCode);
        var (text, deltas, finish, usage) = await StreamedCompletion.ReadAsync(streamResponse);
        Assert.Equal(expected.Text, text);
        Assert.True(deltas > 3, $"expected streamed deltas, got {deltas}");
        Assert.Equal(expected.FinishReason, finish);
        Assert.Equal(expected.PromptTokens, usage!.Value.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(expected.CompletionTokens, usage.Value.GetProperty("completion_tokens").GetInt32());
    }

    private async Task<ulong> SuccessCountAsync(string model)
    {
        var client = new global::Triton.Inference.GRPCInferenceService.GRPCInferenceServiceClient(host.TritonChannel);
        var stats = await client.ModelStatisticsAsync(new() { Name = model });
        return stats.ModelStats.Single().InferenceStats.Success.Count;
    }

    private async Task<ulong> FailureCountAsync(string model)
    {
        var client = new global::Triton.Inference.GRPCInferenceService.GRPCInferenceServiceClient(host.TritonChannel);
        var stats = await client.ModelStatisticsAsync(new() { Name = model });
        return stats.ModelStats.Single().InferenceStats.Fail.Count;
    }
}
