using Microsoft.Extensions.Time.Testing;
using Triton.Inference;
using TritonEmulator.Tests.Infrastructure;
using static TritonEmulator.Tests.Infrastructure.TestModels;

namespace TritonEmulator.Tests.Scheduling;

/// <summary>Batching, queue policy, priorities and cancellation on a fake clock.</summary>
public sealed class SchedulingTests
{
    private const string Model = "fastertransformer";

    // Prefill 5 ms, a decode step 10 ms whatever the batch size.
    private static readonly Dictionary<string, string> Timing = new()
    {
        ["emulator_prefill_base_us"] = "5000",
        ["emulator_step_base_us"] = "10000",
    };

    private static async Task<TestEmulator> StartAsync(string mode, int maxBatchSize, Action<ModelDynamicBatching>? batching = null) =>
        await TestEmulator.StartAsync(
            [FasterTransformer(maxBatchSize: maxBatchSize, mode: mode, batching: batching, parameters: Timing)],
            new FakeTimeProvider(DateTimeOffset.UnixEpoch));

    private static async Task WaitForAsync(Func<bool> condition)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!condition())
        {
            await Task.Delay(10, timeout.Token);
        }
    }

    private static DateTimeOffset FirstAt(StreamRecorder stream, string id) =>
        stream.Messages.First(m => m.Message.InferResponse?.Id == id).At;

    private static DateTimeOffset FinalAt(StreamRecorder stream, string id) =>
        stream.Messages.First(m => m.Message.InferResponse?.Id == id && IsFinal(m.Message.InferResponse)).At;

    [Theory]
    [InlineData("static")]
    [InlineData("inflight")]
    public async Task LateRequest_StaticWaitsForTheBatch_InflightJoinsAtTheNextStep(string mode)
    {
        await using var emulator = await StartAsync(mode, maxBatchSize: 4);
        await using var stream = new StreamRecorder(emulator.Client, emulator.Clock);
        await stream.SendAsync(Request("a", outputLength: 4));
        await emulator.RunClockUntilAsync(Model, stream, () => stream.ResponsesFor("a").Count >= 1);
        await stream.SendAsync(Request("b", outputLength: 2));
        await WaitForAsync(() => emulator.Scheduler(Model).QueuedCount == 1 || emulator.Scheduler(Model).ActiveSequences == 2);

        await emulator.RunClockUntilAsync(Model, stream, () => stream.IsFinished("a") && stream.IsFinished("b"));

        Assert.Equal(4, stream.ResponsesFor("a").Count);
        Assert.Equal(2, stream.ResponsesFor("b").Count);
        if (mode == "static")
        {
            Assert.True(FirstAt(stream, "b") > FinalAt(stream, "a"), "static: b starts only after a's batch ends");
        }
        else
        {
            Assert.True(FirstAt(stream, "b") < FinalAt(stream, "a"), "inflight: b joins while a still runs");
        }
    }

    [Fact]
    public async Task FullQueue_RejectsAtOnce_WithTritonsMessage()
    {
        await using var emulator = await StartAsync("static", maxBatchSize: 1, b => b.DefaultQueuePolicy = new ModelQueuePolicy { MaxQueueSize = 1 });
        await using var stream = new StreamRecorder(emulator.Client, emulator.Clock);
        await stream.SendAsync(Request("running", outputLength: 5));
        await WaitForAsync(() => emulator.Scheduler(Model).ActiveSequences == 1);
        await stream.SendAsync(Request("queued", outputLength: 2));
        await WaitForAsync(() => emulator.Scheduler(Model).QueuedCount == 1);

        await stream.SendAsync(Request("rejected", outputLength: 2));
        await stream.WaitUntilAsync(s => s.IsFinished("rejected"));

        Assert.Equal("Exceeds maximum queue size", stream.ErrorFor("rejected"));
        await emulator.RunClockUntilAsync(Model, stream, () => stream.IsFinished("running") && stream.IsFinished("queued"));
        Assert.Equal(2, stream.ResponsesFor("queued").Count);
    }

    [Fact]
    public async Task Priority_HighPriorityQueuedLater_RunsFirst()
    {
        await using var emulator = await StartAsync("static", maxBatchSize: 1, b =>
        {
            b.PriorityLevels = 2;
            b.DefaultPriorityLevel = 2;
        });
        await using var stream = new StreamRecorder(emulator.Client, emulator.Clock);
        await stream.SendAsync(Request("running", outputLength: 3));
        await WaitForAsync(() => emulator.Scheduler(Model).ActiveSequences == 1);
        var low = Request("low", outputLength: 2);
        low.Parameters["priority"] = new InferParameter { Uint64Param = 2 };
        await stream.SendAsync(low);
        await WaitForAsync(() => emulator.Scheduler(Model).QueuedCount == 1);
        var high = Request("high", outputLength: 2);
        high.Parameters["priority"] = new InferParameter { Int64Param = 1 };
        await stream.SendAsync(high);
        await WaitForAsync(() => emulator.Scheduler(Model).QueuedCount == 2);

        await emulator.RunClockUntilAsync(Model, stream, () => new[] { "running", "low", "high" }.All(stream.IsFinished));

        Assert.True(FinalAt(stream, "high") < FirstAt(stream, "low"));
    }

    [Fact]
    public async Task QueueTimeout_RejectsTheWaitingRequest()
    {
        await using var emulator = await StartAsync("static", maxBatchSize: 1);
        await using var stream = new StreamRecorder(emulator.Client, emulator.Clock);
        await stream.SendAsync(Request("running", outputLength: 10));
        await WaitForAsync(() => emulator.Scheduler(Model).ActiveSequences == 1);
        var impatient = Request("impatient", outputLength: 2);
        impatient.Parameters["timeout"] = new InferParameter { Int64Param = 15_000 };
        await stream.SendAsync(impatient);
        await WaitForAsync(() => emulator.Scheduler(Model).QueuedCount == 1);

        await emulator.RunClockUntilAsync(Model, stream, () => stream.IsFinished("impatient"));

        Assert.Equal("Request timeout expired", stream.ErrorFor("impatient"));
    }

    [Fact]
    public async Task Cancellation_FreesTheSlot_AndIsCounted()
    {
        await using var emulator = await StartAsync("static", maxBatchSize: 1);
        var cancelled = new StreamRecorder(emulator.Client, emulator.Clock);
        await cancelled.SendAsync(Request("long", outputLength: 1000));
        await WaitForAsync(() => emulator.Scheduler(Model).ActiveSequences == 1);
        await using var stream = new StreamRecorder(emulator.Client, emulator.Clock);
        await stream.SendAsync(Request("next", outputLength: 2));
        await WaitForAsync(() => emulator.Scheduler(Model).QueuedCount == 1);

        await cancelled.DisposeAsync();
        // The clock moves only once the engine has seen the cancellation, so "long" produces nothing more.
        await WaitForAsync(() => emulator.Scheduler(Model).CancellationsSeen == 1);
        await emulator.RunClockUntilAsync(Model, stream, () => stream.IsFinished("next"));

        Assert.Equal(2, stream.ResponsesFor("next").Count);
        var statistics = (await emulator.Client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = Model })).ModelStats.Single();
        Assert.Equal(1UL, statistics.InferenceStats.Fail.Count);
        Assert.Equal(1L, statistics.ResponseStats.Values.Sum(r => (long)r.Cancel.Count));
        Assert.Equal(0, emulator.Scheduler(Model).ActiveSequences);
    }

    [Fact]
    public async Task TooLargeForTheKvCache_IsRejected()
    {
        await using var emulator = await TestEmulator.StartAsync(
            [FasterTransformer(parameters: new Dictionary<string, string> { ["emulator_kv_capacity_tokens"] = "10" })]);
        await using var stream = new StreamRecorder(emulator.Client);
        await stream.SendAsync(Request("big", outputLength: 20));
        await stream.WaitUntilAsync(s => s.IsFinished("big"));
        Assert.Contains("KV-cache tokens", stream.ErrorFor("big"));
    }

    [Fact]
    public async Task FakeClock_NothingMovesUntilTimeAdvances()
    {
        await using var emulator = await StartAsync("static", maxBatchSize: 1);
        await using var stream = new StreamRecorder(emulator.Client, emulator.Clock);
        await stream.SendAsync(Request("a", outputLength: 3));
        await WaitForAsync(() => emulator.Scheduler(Model).CurrentWait.Until is not null);
        Assert.Empty(stream.Messages);
    }
}
