using System.Globalization;
using System.Text;

namespace Benchmarks.Report;

/// <summary>One line of the results table.</summary>
internal sealed record ResultRow(
    string Scenario,
    string Target,
    long Requests,
    long Errors,
    double RequestsPerSecond,
    Percentiles Ttft,
    Percentiles InterToken,
    double TokensPerSecond,
    double PeakRssMb,
    double? KbPerStream);

internal readonly record struct Percentiles(double P50, double P95, double P99)
{
    public static Percentiles Of(List<double> values)
    {
        if (values.Count == 0)
        {
            return default;
        }
        values.Sort();
        double At(double q) => values[Math.Min(values.Count - 1, (int)Math.Ceiling(q * values.Count) - 1)];
        return new Percentiles(At(0.50), At(0.95), At(0.99));
    }
}

/// <summary>The markdown report: machine, load, the results table, the gateway-added latency and the targets.</summary>
internal sealed class BenchmarkReport
{
    public List<ResultRow> Rows { get; } = [];
    public List<string> Notes { get; } = [];

    /// <summary>Markdown sections a scenario adds after the tables (e.g. the llama scenario's model and speeds).</summary>
    public List<string> Sections { get; } = [];
    public long Errors => Rows.Sum(r => r.Errors);

    public const string TableHeader =
        "| Scenario | Target | Requests | Errors | req/s | TTFT p50 ms | TTFT p95 ms | TTFT p99 ms | TPOT p50 ms | TPOT p99 ms | tokens/s | peak RSS MB | KB/stream |";

    public string ToMarkdown(BenchmarkOptions options, string loadBefore, string loadAfter, TimeSpan elapsed)
    {
        var c = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.Append("# Benchmarks\n\n");
        md.Append(c, $"Run {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC in {elapsed.TotalSeconds:0} s{(options.Smoke ? " (smoke: sizes too small to mean anything)" : "")}, ")
          .Append(options.InProcess ? "emulator, gateway and load generator in one process" : "emulator and gateway as separate processes (RSS per component)")
          .Append(", HTTP/1.1 loopback");
        if (options.Scenarios.Any(static s => s != BenchmarkOptions.LlamaScenario))
        {
            md.Append(", emulator timing profile zero-latency (idle scenario: one decode step per ").Append(c, $"{options.IdleStep.TotalMilliseconds:0} ms)");
        }
        if (options.Scenarios.Contains(BenchmarkOptions.LlamaScenario))
        {
            md.Append(", llama rows: real llama.cpp inference (see the llama section)");
        }
        md.Append(".\n\n");
        md.Append("Machine: ").Append(Machine.Describe()).Append("  \n");
        md.Append("Load average (1/5/15 min) before: ").Append(loadBefore).Append(", after: ").Append(loadAfter).Append("  \n");
        md.Append("Command: `dotnet run -c Release --project Benchmarks -- ").Append(string.Join(' ', Environment.GetCommandLineArgs().Skip(1))).Append("`\n\n");
        md.Append("TTFT = request sent → first text event; TPOT = a stream's time per output token after the first ((last − first text event) ÷ (tokens − 1)), the per-token latency; tokens/s = completion tokens received per second; ")
          .Append("RSS = the gateway process (emulator rows: the emulator process); KB/stream = (gateway RSS with every stream open − RSS before) ÷ open streams.\n\n");
        md.Append(TableHeader).Append('\n');
        md.Append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        foreach (var r in Rows)
        {
            md.Append(c, $"| {r.Scenario} | {r.Target} | {r.Requests} | {r.Errors} | {r.RequestsPerSecond:0.0} | {r.Ttft.P50:0.000} | {r.Ttft.P95:0.000} | {r.Ttft.P99:0.000} | {r.InterToken.P50:0.000} | {r.InterToken.P99:0.000} | {r.TokensPerSecond:0} | {r.PeakRssMb:0.0} | {(r.KbPerStream is { } kb ? kb.ToString("0.0", c) : "-")} |\n");
        }

        md.Append("\n## Gateway-added latency (gateway − direct, same scenario, same run)\n\n");
        md.Append("| Scenario | TTFT p50 ms | TTFT p99 ms | per token p50 ms | per token p99 ms |\n|---|---:|---:|---:|---:|\n");
        foreach (var gateway in Rows.Where(r => r.Target == "gateway"))
        {
            if (Rows.FirstOrDefault(r => r.Scenario == gateway.Scenario && r.Target == "direct") is { } direct)
            {
                md.Append(c, $"| {gateway.Scenario} | {gateway.Ttft.P50 - direct.Ttft.P50:0.000} | {gateway.Ttft.P99 - direct.Ttft.P99:0.000} | {gateway.InterToken.P50 - direct.InterToken.P50:0.000} | {gateway.InterToken.P99 - direct.InterToken.P99:0.000} |\n");
            }
        }
        foreach (var section in Sections)
        {
            md.Append('\n').Append(section.TrimEnd()).Append('\n');
        }
        if (Notes.Count > 0)
        {
            md.Append("\n## Notes\n\n");
            foreach (var note in Notes)
            {
                md.Append("- ").Append(note).Append('\n');
            }
        }
        return md.ToString();
    }
}

internal static class Machine
{
    public static string Describe()
    {
        var model = "unknown CPU";
        try
        {
            model = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? model;
        }
        catch (IOException)
        {
        }
        var memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024.0 * 1024 * 1024);
        return string.Create(CultureInfo.InvariantCulture,
            $"{Environment.ProcessorCount} cores, {model}, {memory:0} GiB, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}");
    }

    public static string LoadAverage()
    {
        try
        {
            return string.Join(" / ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "n/a";
        }
    }
}
