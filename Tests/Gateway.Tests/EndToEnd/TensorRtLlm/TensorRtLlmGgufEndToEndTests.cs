using System.ClientModel;
using System.Text;
using Gateway.Grpc.Tensors;
using Gateway.Tests.Functional;
using Gateway.Text;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using OpenAI;
using OpenAI.Chat;
using Triton.Inference;
using TritonEmulator.Hosting;
using TritonEmulator.Tests.Models.TensorRtLlm;

namespace Gateway.Tests.EndToEnd.TensorRtLlm;

/// <summary>
/// The shipped <c>models-trtllm/</c> repository with the tiny llama GGUF as its engine (so
/// <c>tensorrt_llm</c> runs on llama.cpp and pre/postprocessing use the GGUF's vocabulary), served by
/// the real TritonEmulator, with a gateway in front: <c>tiny-trtllm</c> → <c>ensemble</c>, contract
/// <c>tensorrtllm</c>, chat template chatml, end id 2 (the GGUF's <c>&lt;/s&gt;</c>), prompts counted with
/// the model's own vocabulary as a SentencePiece <c>tokenizer.model</c>.
/// </summary>
public sealed class TensorRtLlmGgufHost : IAsyncLifetime
{
    public const string Model = "tiny-trtllm";

    private TinyTrtLlmRepository? _repository;

    public WebApplication Emulator { get; private set; } = null!;

    public GrpcChannel TritonChannel { get; private set; } = null!;

    internal GatewayHost Gateway { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        _repository = new TinyTrtLlmRepository(TensorRtLlmHost.ShippedRepository);
        Emulator = TensorRtLlmHost.BuildEmulator(_repository.Root);
        await Emulator.StartAsync();
        var endpoints = Emulator.GetEndpoints();
        TritonChannel = GrpcChannel.ForAddress(endpoints.Grpc);
        Gateway = await GatewayHost.StartAsync(endpoints.Grpc, new Dictionary<string, string?>
        {
            [$"Gateway:Models:{Model}:TritonModel"] = "ensemble",
            [$"Gateway:Models:{Model}:Contract"] = "tensorrtllm",
            [$"Gateway:Models:{Model}:ChatTemplate"] = "chatml",
            [$"Gateway:Models:{Model}:ContextWindow"] = "256",
            [$"Gateway:Models:{Model}:MaxInputTokens"] = "128",
            [$"Gateway:Models:{Model}:MaxOutputTokens"] = "100",
            [$"Gateway:Models:{Model}:EndId"] = "2",
            [$"Gateway:Models:{Model}:Tokenizer"] = "sentencepiece:" + _repository.SentencePieceModel,
        });
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        TritonChannel.Dispose();
        await Emulator.StopAsync(new CancellationToken(canceled: true));
        await Emulator.DisposeAsync();
        _repository?.Dispose();
    }

    /// <summary>The prompt's length as Triton's preprocessing model tokenizes it for the engine (REQUEST_INPUT_LEN), asked directly.</summary>
    public async Task<int> PreprocessedLengthAsync(string prompt)
    {
        var request = new ModelInferRequest { ModelName = "preprocessing" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "QUERY", Datatype = TensorDataTypes.Bytes, Shape = { 1, 1 } });
        request.RawInputContents.Add(TensorCodec.EncodeStrings(prompt));
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "REQUEST_OUTPUT_LEN", Datatype = TensorDataTypes.Int32, Shape = { 1, 1 } });
        request.RawInputContents.Add(TensorCodec.EncodeInt32([1]));
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "REQUEST_INPUT_LEN" });
        var response = await new GRPCInferenceService.GRPCInferenceServiceClient(TritonChannel).ModelInferAsync(request);
        return TensorCodec.ReadInt32(response.RawOutputContents[0].Span, 0);
    }

    /// <summary>The ensemble asked directly over Triton's gRPC protocol (no gateway code): its greedy text and token count.</summary>
    public async Task<(string Text, int Tokens)> EnsembleAsync(string prompt, int maxTokens)
    {
        var request = new ModelInferRequest { ModelName = "ensemble", Id = "direct-" + Guid.NewGuid().ToString("N") };
        void Add(string name, string datatype, Google.Protobuf.ByteString raw)
        {
            var tensor = new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = datatype };
            tensor.Shape.Add([1, 1]);
            request.Inputs.Add(tensor);
            request.RawInputContents.Add(raw);
        }
        Add("text_input", TensorDataTypes.Bytes, TensorCodec.EncodeStrings(prompt));
        Add("max_tokens", TensorDataTypes.Int32, TensorCodec.EncodeInt32([maxTokens]));
        Add("stream", TensorDataTypes.Bool, TensorCodec.EncodeBool([false]));
        Add("return_log_probs", TensorDataTypes.Bool, TensorCodec.EncodeBool([true]));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var call = new GRPCInferenceService.GRPCInferenceServiceClient(TritonChannel).ModelStreamInfer(cancellationToken: timeout.Token);
        await call.RequestStream.WriteAsync(request, timeout.Token);
        await call.RequestStream.CompleteAsync();
        var text = new StringBuilder();
        var tokens = 0;
        await foreach (var message in call.ResponseStream.ReadAllAsync(timeout.Token))
        {
            Assert.Empty(message.ErrorMessage);
            var response = message.InferResponse;
            for (var i = 0; i < response.Outputs.Count; i++)
            {
                switch (response.Outputs[i].Name)
                {
                    case "text_output":
                        text.Append(string.Concat(TensorCodec.DecodeStrings(response.RawOutputContents[i].Span)));
                        break;
                    case "output_log_probs":
                        tokens += response.RawOutputContents[i].Length / sizeof(float);
                        break;
                }
            }
        }
        return (text.ToString(), tokens);
    }
}

/// <summary>The official OpenAI SDK → gateway → TensorRT-LLM's ensemble running the tiny GGUF on llama.cpp.</summary>
public sealed class TensorRtLlmGgufEndToEndTests(TensorRtLlmGgufHost host) : IClassFixture<TensorRtLlmGgufHost>
{
    private const string Prompt = "abc";

    private ChatClient Client() => new(TensorRtLlmGgufHost.Model, new ApiKeyCredential(TestKeys.Full),
        new OpenAIClientOptions { Endpoint = new Uri(host.Gateway.Endpoints.Rest, "v1"), NetworkTimeout = TimeSpan.FromSeconds(60) });

    private static string Rendered => ChatTemplates.Get(ChatTemplates.ChatMl).Render([new ChatTurn("user", Prompt)]);

    private Task<(string Text, ChatFinishReason? Finish, ChatTokenUsage? Usage, int Updates)> StreamAsync(ChatCompletionOptions options) =>
        Contracts.OpenAiSdkContractTests.StreamChatAsync(Client(), Prompt, options);

    [Fact]
    public async Task OpenAiSdk_Chat_IsTheGgufsGreedyAnswer_WithItsCompletionTokens_StreamedOrNot()
    {
        var expected = await host.EnsembleAsync(Rendered, 60);
        Assert.True(expected.Tokens > 3, $"the model's answer should have several tokens, got '{expected.Text}'");
        // The tiny model continues the alphabet from the last letter it reads; the template ends in a newline (→ " a").
        Assert.Equal(" a b c d e f g h i j k l m n o p q r s t u v w x y z", expected.Text);
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 60 };

        ChatCompletion completion = await Client().CompleteChatAsync([new UserChatMessage(Prompt)], options);
        var streamed = await StreamAsync(options);

        Assert.Equal(expected.Text, completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, completion.FinishReason);
        Assert.Equal(expected.Tokens, completion.Usage.OutputTokenCount);
        var promptTokens = await host.PreprocessedLengthAsync(Rendered);
        Assert.True(promptTokens > 20, $"the rendered prompt should be many tokens, got {promptTokens}");
        Assert.Equal(promptTokens, completion.Usage.InputTokenCount);
        Assert.Equal(promptTokens, streamed.Usage?.InputTokenCount);
        Assert.Equal(expected.Text, streamed.Text);
        Assert.Equal(ChatFinishReason.Stop, streamed.Finish);
        Assert.Equal(expected.Tokens, streamed.Usage?.OutputTokenCount);
        Assert.True(streamed.Updates > 3, $"tokens should arrive as separate updates, got {streamed.Updates}");
    }

    [Fact]
    public async Task OpenAiSdk_MaxTokens_EndsWithLengthAfterExactlyThatMany_StreamedOrNot()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 5 };

        ChatCompletion completion = await Client().CompleteChatAsync([new UserChatMessage(Prompt)], options);
        var streamed = await StreamAsync(options);

        Assert.Equal((" a b c d e", ChatFinishReason.Length, 5), (completion.Content[0].Text, completion.FinishReason, completion.Usage.OutputTokenCount));
        Assert.Equal((" a b c d e", ChatFinishReason.Length, 5), (streamed.Text, streamed.Finish, streamed.Usage?.OutputTokenCount));
    }

    [Fact]
    public async Task OpenAiSdk_StopString_EndsTheAnswerJustBeforeIt()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 60 };
        options.StopSequences.Add(" f");

        ChatCompletion completion = await Client().CompleteChatAsync([new UserChatMessage(Prompt)], options);
        var streamed = await StreamAsync(options);

        Assert.Equal((" a b c d e", ChatFinishReason.Stop), (completion.Content[0].Text, completion.FinishReason));
        Assert.Equal((" a b c d e", ChatFinishReason.Stop), (streamed.Text, streamed.Finish));
    }
}
