using System.Text;
using Gateway.Text;

namespace Gateway.Tests.Text;

public sealed class StopStringMatcherTests
{
    private static (string Output, bool Stopped, List<string> Pieces) Run(IReadOnlyList<string> stops, params string[] pieces)
    {
        var matcher = new StopStringMatcher(stops);
        var output = new StringBuilder();
        var emitted = new List<string>();
        foreach (var piece in pieces)
        {
            var before = output.Length;
            matcher.Process(piece, output);
            emitted.Add(output.ToString(before, output.Length - before));
        }
        if (!matcher.Stopped)
        {
            matcher.Flush(output);
        }
        return (output.ToString(), matcher.Stopped, emitted);
    }

    [Fact]
    public void Process_StopSplitAcrossPieces_StopsBeforeIt()
    {
        var (output, stopped, pieces) = Run(["END"], "Hello E", "N", "D and more");
        Assert.True(stopped);
        Assert.Equal("Hello ", output);
        // "E" and "N" were held back: they could have been (and were) the start of the stop string.
        Assert.Equal(["Hello ", "", ""], pieces);
    }

    [Fact]
    public void Process_PrefixThatIsNotAStop_IsReleased()
    {
        var (output, stopped, pieces) = Run(["END"], "Hello E", "NTER");
        Assert.False(stopped);
        Assert.Equal("Hello ENTER", output);
        Assert.Equal(["Hello ", "ENTER"], pieces);
    }

    [Fact]
    public void Process_HeldPrefixAtEnd_IsFlushed()
    {
        var (output, stopped, _) = Run(["\n\nUser:"], "answer\n", "\n");
        Assert.False(stopped);
        Assert.Equal("answer\n\n", output);
    }

    [Fact]
    public void Process_SeveralStops_EarliestWins()
    {
        var (output, stopped, _) = Run(["world", "lo w"], "hello world");
        Assert.True(stopped);
        Assert.Equal("hel", output);
    }

    [Fact]
    public void Process_StopAtVeryStart_EmitsNothing()
    {
        var (output, stopped, _) = Run(["##"], "#", "#tail");
        Assert.True(stopped);
        Assert.Equal("", output);
    }

    [Fact]
    public void Process_NoStops_PassesEverythingAtOnce()
    {
        var (output, stopped, pieces) = Run([], "a", "b");
        Assert.False(stopped);
        Assert.Equal("ab", output);
        Assert.Equal(["a", "b"], pieces);
    }

    [Fact]
    public void Process_OverlappingPrefix_KeepsLongestCandidate()
    {
        // "aab" contains the stop "ab" starting at index 1 even though "aa" first looked like a dead end.
        var (output, stopped, _) = Run(["ab"], "a", "a", "b");
        Assert.True(stopped);
        Assert.Equal("a", output);
    }
}
