using Gateway.Tests.Functional;
using Gateway.Triton;
using Gateway.Triton.Wire;
using Grpc.Net.Client;
using Triton.Inference;

namespace Gateway.Tests.Triton;

/// <summary>The one-request Triton call on its own: its read timeouts measure Triton's silence only.</summary>
public sealed class TritonCallTests
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan Idle = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task ASlowReaderBetweenReads_IsNotTritonSilence_TheNextTokenStillArrives()
    {
        var time = new ObservableTimeProvider();
        var next = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync([1], finalFlag: false);
            await next.Task.WaitAsync(call.Aborted);
            await call.SendTokensAsync([2], finalFlag: true);
        });
        using var channel = GrpcChannel.ForAddress(triton.Address);
                await using var call = await TritonCall.StartAsync(channel.CreateCallInvoker(), new TritonRequest("m", "", "r"), null, time, Idle, CancellationToken.None);

        Assert.NotNull(await call.ReadAsync(null).AsTask().WaitAsync(Wait));
        // The reader is away far longer than the idle timeout (writing to a slow client)...
        time.Advance(Idle * 4);
        // ...and Triton answers at once when asked again.
        next.SetResult();
        Assert.NotNull(await call.ReadAsync(Idle).AsTask().WaitAsync(Wait));
        Assert.False(triton.Calls.Single().Cancelled.IsCompleted);
    }

    [Fact]
    public async Task TritonSilentWhileARead_Waits_IsATimeout()
    {
        var time = new ObservableTimeProvider();
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            await call.SendTokensAsync([1], finalFlag: false);
            await call.Aborted.WaitHandle.WaitOneAsync(Wait);
        });
        using var channel = GrpcChannel.ForAddress(triton.Address);
                await using var call = await TritonCall.StartAsync(channel.CreateCallInvoker(), new TritonRequest("m", "", "r"), null, time, Idle, CancellationToken.None);
        Assert.NotNull(await call.ReadAsync(null).AsTask().WaitAsync(Wait));

        var reading = call.ReadAsync(Idle).AsTask();
        await time.WaitForTimerAsync(Idle, Wait);
        time.Advance(Idle);
        var error = await Assert.ThrowsAsync<TritonCallException>(() => reading.WaitAsync(Wait));
        Assert.Equal(TritonFailure.Timeout, error.Failure);
    }

    [Theory]
    [InlineData("Timeout", false, "first_token_timeout")]
    [InlineData("Backend", false, "backend_error")]
    [InlineData("Transport", false, "backend_unavailable")]
    [InlineData("EndedEarly", false, "backend_unavailable")]
    [InlineData("Timeout", true, "idle_timeout")]
    [InlineData("Backend", true, "backend_error")]
    [InlineData("Transport", true, "backend_error")]
    [InlineData("EndedEarly", true, "backend_error")]
    public void ToGateway_OneMappingForBothPhases(string failureName, bool streaming, string code)
    {
        var failure = Enum.Parse<TritonFailure>(failureName);
        var mapped = new TritonCallException(failure, "boom").ToGateway(streaming, TimeSpan.FromSeconds(1.5));

        Assert.Equal(code, mapped.Code);
        Assert.IsType<TritonCallException>(mapped.InnerException);
        Assert.Contains(failure == TritonFailure.Timeout ? "1.5 s" : "boom", mapped.Message, StringComparison.Ordinal);
        var unavailable = !streaming && failure is TritonFailure.Transport or TritonFailure.EndedEarly;
        Assert.Equal(unavailable, mapped.RetryAfter is not null);
    }
}
