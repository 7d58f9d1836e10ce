namespace Benchmarks.Report;

/// <summary>
/// A scenario's own section of the report, between marker comments: a run of only that scenario
/// replaces just that section, and a run of the other scenarios carries it over unchanged.
/// </summary>
internal sealed class MarkedSection(string scenario)
{
    /// <summary>The faults scenario's section.</summary>
    public static MarkedSection Faults { get; } = new("faults");

    /// <summary>The peers scenario's section.</summary>
    public static MarkedSection Peers { get; } = new("peers");

    /// <summary>The prefix scenario's section.</summary>
    public static MarkedSection Prefix { get; } = new("prefix");

    /// <summary>The ledger scenario's section.</summary>
    public static MarkedSection Ledger { get; } = new("ledger");

    /// <summary>The grammar scenario's section (structured-output decoding cost).</summary>
    public static MarkedSection Grammar { get; } = new("grammar");

    public string Begin { get; } = $"<!-- {scenario}:begin (written by --scenarios {scenario}; other runs keep it) -->";

    public string End { get; } = $"<!-- {scenario}:end -->";

    /// <summary>The section's body in <paramref name="markdown"/>, or null when it has none.</summary>
    public string? Get(string markdown)
    {
        var begin = markdown.IndexOf(Begin, StringComparison.Ordinal);
        var end = markdown.IndexOf(End, StringComparison.Ordinal);
        return begin < 0 || end < begin ? null : markdown[(begin + Begin.Length)..end].Trim('\n');
    }

    /// <summary><paramref name="markdown"/> with the section set to <paramref name="section"/>: replaced in place, else appended.</summary>
    public string Put(string markdown, string section)
    {
        var block = Begin + "\n" + section.Trim('\n') + "\n" + End;
        var begin = markdown.IndexOf(Begin, StringComparison.Ordinal);
        var end = markdown.IndexOf(End, StringComparison.Ordinal);
        if (begin >= 0 && end > begin)
        {
            return markdown[..begin] + block + markdown[(end + End.Length)..];
        }
        return markdown.TrimEnd('\n') + (markdown.Length > 0 ? "\n\n" : "") + block + "\n";
    }
}
