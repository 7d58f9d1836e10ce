using System.Text;

namespace Gateway.Text;

/// <summary>
/// Exact stop-string matching over streamed text. Text that could be the start of a stop string
/// is held back until it is known not to be one; the stop string itself is never emitted.
/// </summary>
public sealed class StopStringMatcher
{
    private readonly string[] _stops;
    // Held text (shorter than the longest stop string) followed by the new text: matched in place, no strings per call.
    private char[] _pending;
    private int _held;

    public StopStringMatcher(IReadOnlyList<string> stops)
    {
        _stops = [.. stops.Where(s => s.Length > 0)];
        _pending = _stops.Length == 0 ? [] : new char[Math.Max(64, 2 * _stops.Max(s => s.Length))];
    }

    /// <summary>True once a stop string was found; later input is ignored.</summary>
    public bool Stopped { get; private set; }

    /// <summary>The stop string that ended the text, if any.</summary>
    public string? MatchedStop { get; private set; }

    /// <summary>Adds <paramref name="text"/> and moves what is safe to send into <paramref name="output"/>.</summary>
    public void Process(ReadOnlySpan<char> text, StringBuilder output)
    {
        if (Stopped || text.IsEmpty)
        {
            return;
        }
        if (_stops.Length == 0)
        {
            output.Append(text);
            return;
        }
        if (_held + text.Length > _pending.Length)
        {
            Array.Resize(ref _pending, Math.Max(_pending.Length * 2, _held + text.Length));
        }
        text.CopyTo(_pending.AsSpan(_held));
        var pending = _pending.AsSpan(0, _held + text.Length);
        var earliest = -1;
        string? matched = null;
        foreach (var stop in _stops)
        {
            var at = pending.IndexOf(stop.AsSpan(), StringComparison.Ordinal);
            if (at >= 0 && (earliest < 0 || at < earliest))
            {
                earliest = at;
                matched = stop;
            }
        }
        if (earliest >= 0)
        {
            output.Append(pending[..earliest]);
            _held = 0;
            Stopped = true;
            MatchedStop = matched;
            return;
        }
        var hold = LongestPrefixSuffix(pending);
        output.Append(pending[..^hold]);
        pending[^hold..].CopyTo(_pending);
        _held = hold;
    }

    /// <summary>At the end of the stream: the held text was not a stop string after all.</summary>
    public void Flush(StringBuilder output)
    {
        if (!Stopped)
        {
            output.Append(_pending.AsSpan(0, _held));
        }
        _held = 0;
    }

    /// <summary>Length of the longest suffix of <paramref name="text"/> that is a proper prefix of a stop string.</summary>
    private int LongestPrefixSuffix(ReadOnlySpan<char> text)
    {
        var best = 0;
        foreach (var stop in _stops)
        {
            var max = Math.Min(stop.Length - 1, text.Length);
            for (var length = max; length > best; length--)
            {
                if (text[^length..].SequenceEqual(stop.AsSpan(0, length)))
                {
                    best = length;
                    break;
                }
            }
        }
        return best;
    }
}
