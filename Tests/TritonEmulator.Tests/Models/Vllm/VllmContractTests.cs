using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Grpc.Core;
using Triton.Inference;
using static TritonEmulator.Tests.Models.Vllm.TinyLlamaEngine;

namespace TritonEmulator.Tests.Models.Vllm;

/// <summary>The vLLM backend contract over Triton's gRPC and HTTP, with real llama.cpp inference on the tiny model.</summary>
public sealed class VllmContractTests(TinyLlamaEngine engine) : IClassFixture<TinyLlamaEngine>
{
    private const string Greedy = """{"temperature": "0", "max_tokens": "100"}""";

    /// <summary>Runs the whole context: end of sequence ignored, the alphabet goes round.</summary>
    private const string Long = """{"temperature": 0, "max_tokens": 250, "ignore_eos": true}""";

    [Fact]
    public async Task NonStreaming_Greedy_ReturnsPromptAndCompletionWithUsageAndFinishReason()
    {
        var messages = await engine.StreamAsync(Request(Model, "r1", "abc", Greedy,
            ("return_finish_reason", true), ("return_num_input_tokens", true), ("return_num_output_tokens", true)));

        var response = Assert.Single(messages).InferResponse;
        Assert.True(IsFinal(response));
        Assert.Equal("r1", response.Id);
        Assert.Equal("abc" + TinyLlama.AfterC, Text(response, "text_output"));
        Assert.Equal("stop", Text(response, "finish_reason"));
        Assert.Equal(4u, UInt(response, "num_input_tokens")); // <s> ▁a b c
        Assert.Equal(24u, UInt(response, "num_output_tokens")); // ▁d … ▁z and </s>
    }

    [Fact]
    public async Task NonStreaming_ExcludeInput_ReturnsCompletionOnly()
    {
        var messages = await engine.StreamAsync(Request(Model, "r2", "abc", Greedy, ("exclude_input_in_output", true)));

        Assert.Equal(TinyLlama.AfterC, Text(Assert.Single(messages).InferResponse, "text_output"));
    }

    [Fact]
    public async Task Streaming_SendsOneDeltaPerTokenAndTheFinishReasonLast()
    {
        var messages = await engine.StreamAsync(Request(Model, "s1", "abc", Greedy,
            ("stream", true), ("return_finish_reason", true), ("return_num_output_tokens", true), ("return_num_input_tokens", true)));

        var responses = messages.Select(static m => m.InferResponse).ToList();
        Assert.All(messages, static m => Assert.Empty(m.ErrorMessage));
        Assert.Equal(24, responses.Count);
        Assert.Equal(" d", Text(responses[0], "text_output"));
        Assert.Equal(" e", Text(responses[1], "text_output"));
        Assert.Equal("", Text(responses[^1], "text_output")); // </s> adds no text
        Assert.Equal(TinyLlama.AfterC, string.Concat(responses.Select(static r => Text(r, "text_output"))));
        Assert.All(responses[..^1], static r => Assert.Equal("None", Text(r, "finish_reason")));
        Assert.All(responses[..^1], static r => Assert.False(IsFinal(r)));
        Assert.Equal("stop", Text(responses[^1], "finish_reason"));
        Assert.True(IsFinal(responses[^1]));
        Assert.All(responses, static r => Assert.Equal(1u, UInt(r, "num_output_tokens")));
        Assert.All(responses, static r => Assert.Equal(4u, UInt(r, "num_input_tokens")));
    }

    [Fact]
    public async Task Streaming_StopString_EndsGenerationAndNoPartOfItIsSent()
    {
        var messages = await engine.StreamAsync(Request(Model, "s2", "abc", """{"temperature": 0, "max_tokens": 100, "stop": ["h i", "never"]}""",
            ("stream", true), ("return_finish_reason", true)));

        var responses = messages.Select(static m => m.InferResponse).ToList();
        var deltas = responses.Select(static r => Text(r, "text_output")!).ToList();
        Assert.Equal(" d e f g ", string.Concat(deltas));
        Assert.DoesNotContain(deltas, static d => d.Contains('h'));
        Assert.Equal("stop", Text(responses[^1], "finish_reason"));
        Assert.True(IsFinal(responses[^1]));
    }

    [Fact]
    public async Task NonStreaming_StopAsSingleString_IsCutFromTheText()
    {
        var messages = await engine.StreamAsync(Request(Model, "s3", "xyz abc", """{"temperature": 0, "stop": " f"}""",
            ("exclude_input_in_output", true), ("return_finish_reason", true)));

        var response = Assert.Single(messages).InferResponse;
        Assert.Equal(" d e", Text(response, "text_output"));
        Assert.Equal("stop", Text(response, "finish_reason"));
    }

    [Fact]
    public async Task MaxTokens_EndsWithFinishReasonLength()
    {
        var messages = await engine.StreamAsync(Request(Model, "m1", "abc", """{"temperature": 0, "max_tokens": 5}""",
            ("exclude_input_in_output", true), ("return_finish_reason", true), ("return_num_output_tokens", true)));

        var response = Assert.Single(messages).InferResponse;
        Assert.Equal(" d e f g h", Text(response, "text_output"));
        Assert.Equal("length", Text(response, "finish_reason"));
        Assert.Equal(5u, UInt(response, "num_output_tokens"));
    }

    [Fact]
    public async Task MaxTokens_DefaultsToVllmsSixteen()
    {
        var messages = await engine.StreamAsync(Request(Model, "m2", "a", """{"temperature": 0}""",
            ("exclude_input_in_output", true), ("return_num_output_tokens", true), ("return_finish_reason", true)));

        var response = Assert.Single(messages).InferResponse;
        Assert.Equal(16u, UInt(response, "num_output_tokens"));
        Assert.Equal("length", Text(response, "finish_reason"));
    }

    [Fact]
    public async Task Sampling_SameSeedSameText_OtherSeedOtherText()
    {
        async Task<string> Sample(string id, int seed)
        {
            var json = $$"""{"temperature": "20", "top_p": "0.95", "max_tokens": "12", "seed": "{{seed}}", "ignore_eos": true}""";
            var messages = await engine.StreamAsync(Request(Model, id, "abc", json, ("exclude_input_in_output", true)));
            return Text(Assert.Single(messages).InferResponse, "text_output")!;
        }

        var first = await Sample("seed-a", 1234);
        var again = await Sample("seed-b", 1234);
        var other = await Sample("seed-c", 99);

        Assert.Equal(first, again);
        Assert.NotEqual(first, other);
        Assert.False(TinyLlama.AfterC.StartsWith(first, StringComparison.Ordinal), first); // a high temperature really samples
    }

    [Fact]
    public async Task Streaming_WithExcludeInputFalse_IsRejectedLikeTheBackend()
    {
        var messages = await engine.StreamAsync(Request(Model, "e1", "abc", Greedy, ("stream", true), ("exclude_input_in_output", false)));

        var message = Assert.Single(messages);
        Assert.Contains("When streaming, `exclude_input_in_output` = False is not allowed.", message.ErrorMessage);
    }

    [Fact]
    public async Task UnknownSamplingParameter_IsAnErrorNamingIt()
    {
        var messages = await engine.StreamAsync(Request(Model, "e2", "abc", """{"temprature": 0}"""));

        Assert.Contains("'temprature'", Assert.Single(messages).ErrorMessage);
    }

    [Fact]
    public async Task Cancellation_StopsGenerationCountsAFailureAndFreesTheContext()
    {
        var failures = await engine.FailuresAsync(SingleContextModel);
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var call = engine.Client.ModelStreamInfer(cancellationToken: cancel.Token);
        // Long enough to run until cancelled (seconds): end of sequence ignored, most of the 8192-token context.
        await call.RequestStream.WriteAsync(Request(SingleContextModel, "c1", "abc", """{"temperature": 0, "max_tokens": 8000, "ignore_eos": true}""", ("stream", true)));
        Assert.True(await call.ResponseStream.MoveNext(cancel.Token));
        Assert.Equal(" d", Text(call.ResponseStream.Current.InferResponse, "text_output"));
        cancel.Cancel();
        call.Dispose();

        // The model's only context comes back when the engine drops the cancelled request, so the next one runs...
        var messages = await engine.StreamAsync(Request(SingleContextModel, "c2", "abc", Greedy, ("exclude_input_in_output", true)));
        Assert.Equal(TinyLlama.AfterC, Text(Assert.Single(messages).InferResponse, "text_output"));
        // ...and by then the cancellation is counted as a failed request.
        Assert.Equal(failures + 1, await engine.FailuresAsync(SingleContextModel));
    }

    [Fact]
    public async Task MoreRequestsThanContexts_QueueAndRunInTurn()
    {
        var messages = await engine.StreamWhileFirstRunsAsync(
            Request(SingleContextModel, "q1", "abc", Long, ("stream", true)),
            Request(SingleContextModel, "q2", "xyz abc", Greedy, ("stream", true)));

        // Each request's responses reach the stream through their own pump (as on Triton, responses of
        // different requests on one stream may interleave), so q1's last response or two can still be in
        // flight when q2's first arrives. Had q2 run while q1 held the only context, q1's long generation
        // would go on after q2's first response: hundreds of q1 responses, not a tail of one or two.
        var order = messages.Select(static m => m.InferResponse.Id).ToList();
        var q1AfterQ2Started = order.Skip(order.IndexOf("q2")).Count(static id => id == "q1");
        Assert.True(order.Count(static id => id == "q1") > 50, "q1 generates long enough to overlap q2 if both ran");
        Assert.True(q1AfterQ2Started <= 2, $"q2 ran while q1 held the only context: {string.Join(",", order)}");
        Assert.Equal(TinyLlama.AfterC, string.Concat(messages.Where(static m => m.InferResponse.Id == "q2").Select(static m => Text(m.InferResponse, "text_output"))));
    }

    [Fact]
    public async Task TwoContexts_RunTwoRequestsAtOnce()
    {
        // p1 runs for seconds (end of sequence ignored, most of an 8192-token context); p2 is sent once p1
        // streams and must finish while p1 still holds the other context, however loaded the machine is.
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var call = engine.Client.ModelStreamInfer(cancellationToken: cancel.Token);
        await call.RequestStream.WriteAsync(Request(TwoContextModel, "p1", "abc", """{"temperature": 0, "max_tokens": 8000, "ignore_eos": true}""", ("stream", true)));
        Assert.True(await call.ResponseStream.MoveNext(cancel.Token));
        await call.RequestStream.WriteAsync(Request(TwoContextModel, "p2", "abc", Greedy, ("stream", true)));

        var p2 = new List<ModelInferResponse>();
        var p1Finished = false;
        while (await call.ResponseStream.MoveNext(cancel.Token))
        {
            var response = call.ResponseStream.Current;
            Assert.Empty(response.ErrorMessage);
            if (response.InferResponse.Id == "p1")
            {
                p1Finished |= IsFinal(response.InferResponse);
                continue;
            }
            p2.Add(response.InferResponse);
            if (IsFinal(response.InferResponse))
            {
                break;
            }
        }
        cancel.Cancel();
        call.Dispose();

        Assert.False(p1Finished, "p1 ended before p2: the second context was not used");
        Assert.Equal(TinyLlama.AfterC, string.Concat(p2.Select(static r => Text(r, "text_output"))));
    }

    [Fact]
    public async Task TwoContexts_DecodeBothRequestsInSharedSteps_AndEachGetsItsTextAlone()
    {
        var before = await StatisticsAsync(TwoContextModel);
        // p1 runs for seconds; p2 joins once p1 streams, so every step of p2 has p1 running beside it.
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var call = engine.Client.ModelStreamInfer(cancellationToken: cancel.Token);
        await call.RequestStream.WriteAsync(Request(TwoContextModel, "b1", "abc", """{"temperature": 0, "max_tokens": 8000, "ignore_eos": true}""", ("stream", true)));
        Assert.True(await call.ResponseStream.MoveNext(cancel.Token));
        var p1 = new StringBuilder(Text(call.ResponseStream.Current.InferResponse, "text_output"));
        var p1Tokens = 1;
        await call.RequestStream.WriteAsync(Request(TwoContextModel, "b2", "xyz abc", Greedy, ("stream", true)));

        var p2 = new List<ModelInferResponse>();
        var p1Finished = false;
        while (await call.ResponseStream.MoveNext(cancel.Token))
        {
            var response = call.ResponseStream.Current;
            Assert.Empty(response.ErrorMessage);
            if (response.InferResponse.Id == "b1")
            {
                p1Finished |= IsFinal(response.InferResponse);
                p1.Append(Text(response.InferResponse, "text_output"));
                p1Tokens++;
                // p1's first response after p2's last comes from a later step, so p2's steps are all counted by now.
                if (p2.Count > 0 && IsFinal(p2[^1]))
                {
                    break;
                }
                continue;
            }
            p2.Add(response.InferResponse);
        }
        cancel.Cancel();
        call.Dispose();
        var after = await StatisticsAsync(TwoContextModel);

        Assert.False(p1Finished, "p1 ended before p2: the requests did not run together");
        // Each request's greedy text is the one it gets alone.
        Assert.Equal(TinyLlama.AfterC, string.Concat(p2.Select(static r => Text(r, "text_output"))));
        var alone = await engine.StreamAsync(Request(SingleContextModel, "b1-alone", "abc",
            $$"""{"temperature": 0, "max_tokens": {{p1Tokens}}, "ignore_eos": true}""", ("exclude_input_in_output", true)));
        Assert.Equal(Text(Assert.Single(alone).InferResponse, "text_output"), p1.ToString());
        // Every step of p2 (one token each) was one execution of a batch of two: the pair shared the forward pass.
        var shared = BatchExecutions(after, 2) - BatchExecutions(before, 2);
        Assert.True(shared >= (ulong)p2.Count, $"{shared} executions of two requests for p2's {p2.Count} tokens");
        Assert.True(after.ExecutionCount - before.ExecutionCount >= shared);
        // inference_count counts requests, not steps.
        Assert.Equal(2UL, after.InferenceCount - before.InferenceCount);
    }

    private async Task<ModelStatistics> StatisticsAsync(string model) =>
        (await engine.Client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = model })).ModelStats.Single();

    private static ulong BatchExecutions(ModelStatistics statistics, ulong batchSize) =>
        statistics.BatchStats.FirstOrDefault(b => b.BatchSize == batchSize)?.ComputeInfer.Count ?? 0;

    [Fact]
    public async Task Config_IsAutoCompletedLikeTheVllmBackend()
    {
        var config = (await engine.Client.ModelConfigAsync(new ModelConfigRequest { Name = Model })).Config;

        Assert.True(config.ModelTransactionPolicy.Decoupled);
        Assert.Equal(0, config.MaxBatchSize);
        Assert.Equal(
            ["text_input", "image", "stream", "sampling_parameters", "exclude_input_in_output", "return_finish_reason",
             "return_cumulative_logprob", "return_logprobs", "return_num_input_tokens", "return_num_output_tokens", "embedding_request"],
            config.Input.Select(static i => i.Name));
        Assert.False(config.Input[0].Optional);
        Assert.Equal(DataType.TypeString, config.Input[0].DataType);
        Assert.Equal(
            ["text_output", "finish_reason", "cumulative_logprob", "logprobs", "num_input_tokens", "num_output_tokens"],
            config.Output.Select(static o => o.Name));
        var metadata = await engine.Client.ModelMetadataAsync(new ModelMetadataRequest { Name = Model });
        Assert.Equal([1L], metadata.Inputs.Single(static i => i.Name == "text_input").Shape); // no batch dimension
    }

    [Fact]
    public async Task MissingGguf_ModelIsUnavailableWithReason_OthersServe()
    {
        var index = await engine.Client.RepositoryIndexAsync(new RepositoryIndexRequest());
        var missing = index.Models.Single(static m => m.Name == MissingModel);
        Assert.Equal("UNAVAILABLE", missing.State);
        Assert.Contains("not-here.gguf", missing.Reason);
        Assert.Contains("does not exist", missing.Reason);
        Assert.Equal("READY", index.Models.Single(static m => m.Name == Model).State);

        Assert.False((await engine.Client.ModelReadyAsync(new ModelReadyRequest { Name = MissingModel })).Ready);
        Assert.True((await engine.Client.ModelReadyAsync(new ModelReadyRequest { Name = Model })).Ready);
        Assert.Equal(HttpStatusCode.BadRequest, (await engine.Http.GetAsync($"/v2/models/{MissingModel}/ready")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await engine.Http.GetAsync($"/v2/models/{Model}/ready")).StatusCode);

        var messages = await engine.StreamAsync(Request(MissingModel, "x1", "abc", Greedy));
        Assert.Contains("not-here.gguf", Assert.Single(messages).ErrorMessage);
        var served = await engine.StreamAsync(Request(Model, "x2", "abc", Greedy, ("exclude_input_in_output", true)));
        Assert.Equal(TinyLlama.AfterC, Text(Assert.Single(served).InferResponse, "text_output"));
    }

    [Fact]
    public async Task HttpGenerate_ReturnsTheCompletion()
    {
        using var response = await engine.Http.PostAsJsonAsync($"/v2/models/{Model}/generate",
            new { text_input = "abc", parameters = new { temperature = 0, max_tokens = 100 } });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(TinyLlama.AfterC, json.RootElement.GetProperty("text_output").GetString());
        Assert.Equal(24, json.RootElement.GetProperty("generated_tokens").GetInt32());
    }

    [Fact]
    public async Task HttpGenerate_StreamFalse_IncludesThePromptLikeVllm()
    {
        using var response = await engine.Http.PostAsJsonAsync($"/v2/models/{Model}/generate",
            new { text_input = "abc", parameters = new { stream = false, temperature = 0, max_tokens = 3 } });

        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("abc d e f", json.RootElement.GetProperty("text_output").GetString());
    }

    [Fact]
    public async Task HttpGenerateStream_SendsAnEventPerToken()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/v2/models/{Model}/generate_stream")
        {
            Content = new StringContent("""{"text_input": "abc", "parameters": {"temperature": 0, "max_tokens": 4}}""", Encoding.UTF8, "application/json"),
        };
        using var response = await engine.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);

        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var body = await response.Content.ReadAsStringAsync();
        var events = body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)
            .Select(static e => JsonDocument.Parse(e["data: ".Length..]).RootElement)
            .ToList();
        Assert.Equal([" d", " e", " f", " g"], events.Select(static e => e.GetProperty("text_output").GetString()));
        Assert.True(events[^1].GetProperty("triton_final_response").GetBoolean());
    }

    [Fact]
    public async Task RequestParameters_AreTheSamplingParametersWhenTheTensorIsAbsent()
    {
        var request = Request(Model, "p3", "abc", "{}", ("exclude_input_in_output", true));
        var index = request.Inputs.ToList().FindIndex(static i => i.Name == "sampling_parameters");
        request.Inputs.RemoveAt(index);
        request.RawInputContents.RemoveAt(index);
        request.Parameters["temperature"] = new InferParameter { DoubleParam = 0 };
        request.Parameters["max_tokens"] = new InferParameter { Int64Param = 2 };

        var messages = await engine.StreamAsync(request);

        Assert.Equal(" d e", Text(Assert.Single(messages).InferResponse, "text_output"));
    }

    [Fact]
    public async Task ModelInfer_OnTheDecoupledModel_IsRefusedLikeTriton()
    {
        var exception = await Assert.ThrowsAsync<RpcException>(async () =>
            await engine.Client.ModelInferAsync(Request(Model, "u1", "abc", Greedy)));

        Assert.Contains("decoupled", exception.Status.Detail);
    }
}
