using Gateway.Routing;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Routing;

/// <summary>Ejection and readmission of one replica when a probe success and a new ejection interleave.</summary>
public sealed class TritonReplicaEjectionTests
{
    /// <summary>Fake time that runs a callback once, inside the next clock read of the code under test.</summary>
    private sealed class InterleavingTimeProvider : FakeTimeProvider
    {
        public Action? OnNextRead { get; set; }

        public override long GetTimestamp()
        {
            var hook = OnNextRead;
            OnNextRead = null;
            hook?.Invoke();
            return base.GetTimestamp();
        }
    }

    [Fact]
    public void EjectionDuringAProbeSuccess_WinsOverTheOlderProbe_AndTheReplicaStaysEjected()
    {
        var time = new InterleavingTimeProvider();
        var minEjection = TimeSpan.FromSeconds(2);
        var replica = FakeFleet.Detached("http://10.0.0.1:8001");
        Assert.True(replica.Eject(time.GetTimestamp(), "connection refused"));
        time.Advance(minEjection);

        // The probe has read "ejected long enough ago"; before it readmits, a request's stream breaks on the replica.
        time.OnNextRead = () => replica.Eject(time.GetTimestamp(), "connection reset");
        var readmitted = replica.ProbeSucceeded(time, minEjection);

        Assert.False(readmitted); // the probe's answer predates the failure
        Assert.True(replica.IsEjected);
        Assert.Equal("connection reset", replica.EjectionReason);
        // The next probe, after the failure, still readmits it once MinEjection has passed.
        Assert.True(replica.ProbeSucceeded(time, minEjection));
        Assert.False(replica.IsEjected);
    }

    [Fact]
    public void ProbeSuccessBeforeMinEjection_KeepsTheReplicaOut_AndEjectingTwiceReportsOnce()
    {
        var time = new InterleavingTimeProvider();
        var replica = FakeFleet.Detached("http://10.0.0.1:8001");
        Assert.True(replica.Eject(time.GetTimestamp(), "a"));
        Assert.False(replica.Eject(time.GetTimestamp(), "b"));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(replica.ProbeSucceeded(time, TimeSpan.FromSeconds(2)));
        Assert.True(replica.IsEjected);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(replica.ProbeSucceeded(time, TimeSpan.FromSeconds(2)));
        Assert.False(replica.ProbeSucceeded(time, TimeSpan.FromSeconds(2))); // already back
    }
}
