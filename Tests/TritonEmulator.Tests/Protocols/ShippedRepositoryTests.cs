using Triton.Inference;
using TritonEmulator.Repository;
using TritonEmulator.Tests.Infrastructure;
using TritonEmulator.Tests.Repository;
using static TritonEmulator.Tests.Infrastructure.TestModels;

namespace TritonEmulator.Tests.Protocols;

/// <summary>The engine serves the shipped <c>models/</c> folder and a repository written by the test as text.</summary>
public sealed class ShippedRepositoryTests
{
    [Fact]
    public async Task ShippedModels_AreReady_AndStreamCumulativeIdsToAFinalResponse()
    {
        await using var emulator = await TestEmulator.StartAsync([], profile: "zero-latency", repository: RepositoryPaths.ModelsFolder);

        Assert.True((await emulator.Client.ServerReadyAsync(new ServerReadyRequest())).Ready);
        var config = (await emulator.Client.ModelConfigAsync(new ModelConfigRequest { Name = "fastertransformer" })).Config;
        Assert.True(config.ModelTransactionPolicy.Decoupled);
        await using var stream = new StreamRecorder(emulator.Client);
        await stream.SendAsync(Request("shipped", outputLength: 6, emptyFinal: true));
        await stream.WaitUntilAsync(s => s.IsFinished("shipped"));

        Assert.Null(stream.ErrorFor("shipped"));
        var responses = stream.ResponsesFor("shipped");
        Assert.True(IsFinal(responses[^1]));
        Assert.Empty(responses[^1].Outputs);
        Assert.Equal(Prompt.Length + 6, OutputIds(responses[^2]).Length);
    }

    [Fact]
    public async Task TextRepository_WrittenByTheTest_IsServed_AndBadModelsAreUnavailable()
    {
        using var repository = new TempRepository();
        var config = FasterTransformer(name: "tiny", maxBatchSize: 2, mode: "inflight");
        Directory.CreateDirectory(Path.Combine(repository.Root, "tiny", "1"));
        await File.WriteAllTextAsync(Path.Combine(repository.Root, "tiny", "config.pbtxt"), TextFormat.Print(config));
        Directory.CreateDirectory(Path.Combine(repository.Root, "broken", "1"));
        await File.WriteAllTextAsync(Path.Combine(repository.Root, "broken", "config.pbtxt"), "name: \"broken\"\nbackend: \"onnxruntime\"\n");

        await using var emulator = await TestEmulator.StartAsync([], profile: "zero-latency", repository: repository.Root);

        Assert.True((await emulator.Client.ModelReadyAsync(new ModelReadyRequest { Name = "tiny" })).Ready);
        Assert.False((await emulator.Client.ServerReadyAsync(new ServerReadyRequest())).Ready);
        var index = await emulator.Client.RepositoryIndexAsync(new RepositoryIndexRequest());
        var broken = index.Models.Single(m => m.Name == "broken");
        Assert.Equal("UNAVAILABLE", broken.State);
        Assert.Contains("onnxruntime", broken.Reason);
        var response = await emulator.Client.ModelMetadataAsync(new ModelMetadataRequest { Name = "tiny" });
        Assert.Equal("fastertransformer", response.Platform);
    }
}
