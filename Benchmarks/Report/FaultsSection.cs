namespace Benchmarks.Report;

/// <summary>
/// The faults scenario's section of the report, between marker comments: a faults-only run
/// replaces just that section, and a run of the other scenarios carries it over unchanged.
/// </summary>
internal static class FaultsSection
{
    public const string Begin = "<!-- faults:begin (written by --scenarios faults; other runs keep it) -->";
    public const string End = "<!-- faults:end -->";

    /// <summary>The section's body in <paramref name="markdown"/>, or null when it has none.</summary>
    public static string? Get(string markdown)
    {
        var begin = markdown.IndexOf(Begin, StringComparison.Ordinal);
        var end = markdown.IndexOf(End, StringComparison.Ordinal);
        return begin < 0 || end < begin ? null : markdown[(begin + Begin.Length)..end].Trim('\n');
    }

    /// <summary><paramref name="markdown"/> with the section set to <paramref name="section"/>: replaced in place, else appended.</summary>
    public static string Put(string markdown, string section)
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
