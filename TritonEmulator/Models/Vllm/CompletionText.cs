using System.Text;

namespace TritonEmulator.Models.Vllm;

/// <summary>
/// The completion text of one request and its stop strings, as vLLM keeps them: a stop string ends
/// the completion and is cut off (never sent), and while the text ends with the start of a stop
/// string that part is held back from streamed deltas, so no prefix of it leaks out either.
/// </summary>
internal sealed class CompletionText(IReadOnlyList<string> stop)
{
    private readonly StringBuilder _text = new();
    private int _sent;

    /// <summary>The completion so far, stop string removed.</summary>
    public string Text => _text.ToString();

    public int Length => _text.Length;

    /// <summary>Adds decoded text; returns true when a stop string appeared (the text is cut before it).</summary>
    public bool Append(string piece)
    {
        if (piece.Length == 0 || stop.Count == 0)
        {
            _text.Append(piece);
            return false;
        }
        var before = _text.Length;
        _text.Append(piece);
        var earliest = -1;
        foreach (var s in stop)
        {
            // Only a match that ends in the new text can be new.
            var from = Math.Max(0, before - s.Length + 1);
            var index = IndexOf(s, from);
            if (index >= 0 && (earliest < 0 || index < earliest))
            {
                earliest = index;
            }
        }
        if (earliest < 0)
        {
            return false;
        }
        _text.Length = earliest;
        return true;
    }

    /// <summary>The text not sent yet; unless <paramref name="final"/>, minus a tail that may begin a stop string.</summary>
    public string TakeDelta(bool final)
    {
        var end = final ? _text.Length : _text.Length - HeldBack();
        if (end <= _sent)
        {
            return "";
        }
        var delta = _text.ToString(_sent, end - _sent);
        _sent = end;
        return delta;
    }

    private int HeldBack()
    {
        var held = 0;
        foreach (var s in stop)
        {
            for (var length = Math.Min(s.Length - 1, _text.Length); length > held; length--)
            {
                if (EndsWith(s.AsSpan(0, length)))
                {
                    held = length;
                    break;
                }
            }
        }
        return held;
    }

    private bool EndsWith(ReadOnlySpan<char> prefix)
    {
        var start = _text.Length - prefix.Length;
        for (var i = 0; i < prefix.Length; i++)
        {
            if (_text[start + i] != prefix[i])
            {
                return false;
            }
        }
        return true;
    }

    private int IndexOf(string value, int from)
    {
        var last = _text.Length - value.Length;
        for (var i = from; i <= last; i++)
        {
            var match = true;
            for (var k = 0; k < value.Length; k++)
            {
                if (_text[i + k] != value[k])
                {
                    match = false;
                    break;
                }
            }
            if (match)
            {
                return i;
            }
        }
        return -1;
    }
}
