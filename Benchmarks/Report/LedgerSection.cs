namespace Benchmarks.Report;

/// <summary>The ledger scenario's section of the report, between markers, kept by runs that do not measure it (like <see cref="FaultsSection"/>).</summary>
internal static class LedgerSection
{
    public const string Begin = "<!-- ledger:begin (written by --scenarios ledger; other runs keep it) -->";
    public const string End = "<!-- ledger:end -->";

    public static string? Get(string markdown)
    {
        var begin = markdown.IndexOf(Begin, StringComparison.Ordinal);
        var end = markdown.IndexOf(End, StringComparison.Ordinal);
        return begin < 0 || end < begin ? null : markdown[(begin + Begin.Length)..end].Trim('\n');
    }

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
