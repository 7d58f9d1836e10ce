using System.Globalization;
using Benchmarks;

namespace Gateway.Tests.Benchmarks;

/// <summary>
/// The benchmark harness's smoke run (in process, seconds long): it completes and its table parses.
/// Not part of the unit run: test.sh runs the <c>Benchmark</c> category as its own step.
/// </summary>
[Trait("Category", "Benchmark")]
public sealed class BenchmarkSmokeTests
{
    [Fact]
    public async Task SmokeRun_WritesATableWithNumbersAndNoErrors()
    {
        var output = Path.Combine(Path.GetTempPath(), $"bench-smoke-{Guid.NewGuid():N}.md");
        try
        {
            var options = BenchmarkOptions.Parse(["--smoke", "--in-process", "--output", output])!;
            using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await BenchmarkRunner.RunAsync(options, TextWriter.Null, cancel.Token);

            var lines = await File.ReadAllLinesAsync(output);
            Assert.Contains(lines, l => l.StartsWith("Machine: ", StringComparison.Ordinal) && l.Contains("cores", StringComparison.Ordinal));
            var header = Array.IndexOf(lines, global::Benchmarks.Report.BenchmarkReport.TableHeader);
            Assert.True(header >= 0, "the results table header is missing");
            var columns = Cells(lines[header]);
            var rows = lines.Skip(header + 2).TakeWhile(l => l.StartsWith('|')).Select(Cells).ToList();
            // rates (2 rates × direct + gateway), streams (direct + gateway), idle, soak
            Assert.Equal(8, rows.Count);
            foreach (var row in rows)
            {
                Assert.Equal(columns.Length, row.Length);
                var values = columns.Zip(row).ToDictionary(p => p.First, p => p.Second);
                Assert.Equal("0", values["Errors"]);
                Assert.True(long.Parse(values["Requests"], CultureInfo.InvariantCulture) > 0);
                foreach (var numeric in new[] { "req/s", "TTFT p50 ms", "TTFT p95 ms", "TTFT p99 ms", "TPOT p50 ms", "TPOT p99 ms", "tokens/s", "peak RSS MB" })
                {
                    Assert.True(double.TryParse(values[numeric], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= 0, $"{numeric} = '{values[numeric]}'");
                }
                Assert.True(double.Parse(values["TTFT p50 ms"], CultureInfo.InvariantCulture) > 0);
                Assert.True(double.Parse(values["tokens/s"], CultureInfo.InvariantCulture) > 0);
            }
            Assert.Contains(rows, r => r[1] == "gateway" && r[0].Contains("idle", StringComparison.Ordinal));
            Assert.Contains(lines, l => l.StartsWith("## Gateway-added latency", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Fact]
    public async Task LlamaSmokeRun_ServesAQuantizedLlamaShapeThroughTheGateway_WithNoErrors()
    {
        var output = Path.Combine(Path.GetTempPath(), $"bench-llama-smoke-{Guid.NewGuid():N}.md");
        try
        {
            // A tiny llama shape: written as F16, quantized to Q4_K_M by llama.cpp, served as a vLLM model.
            var options = BenchmarkOptions.Parse(["--smoke", "--in-process", "--scenarios", "llama", "--output", output])!;
            using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            var report = await BenchmarkRunner.RunAsync(options, TextWriter.Null, cancel.Token);

            // 1 and 2 streams, direct and gateway; every stream ran to max_tokens.
            Assert.Equal(4, report.Rows.Count);
            Assert.All(report.Rows, static row =>
            {
                Assert.Equal(0, row.Errors);
                Assert.True(row.Requests > 0);
                Assert.True(row.Ttft.P50 > 0 && row.InterToken.P50 > 0 && row.TokensPerSecond > 0, row.ToString());
            });
            var markdown = await File.ReadAllTextAsync(output);
            Assert.Contains("## llama: TinyLlama-1.1B-shaped Q4_K_M on llama.cpp", markdown, StringComparison.Ordinal);
            Assert.Contains("Random weights: speed only, not quality", markdown, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(output);
        }
    }

    [Fact]
    public async Task GrammarSmokeRun_WritesItsSection_EveryGuideMeasured()
    {
        var output = Path.Combine(Path.GetTempPath(), $"bench-grammar-smoke-{Guid.NewGuid():N}.md");
        try
        {
            await File.WriteAllTextAsync(output, "# Benchmarks\n\nkept text\n");
            var options = BenchmarkOptions.Parse(["--smoke", "--in-process", "--scenarios", "grammar", "--output", output])!;
            using var cancel = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await BenchmarkRunner.RunAsync(options, TextWriter.Null, cancel.Token);

            var markdown = await File.ReadAllTextAsync(output);
            Assert.Contains("kept text", markdown, StringComparison.Ordinal); // only its own marked section is written
            Assert.Contains("## grammar: structured-output decoding cost on llama.cpp", markdown, StringComparison.Ordinal);
            var rows = markdown.Split('\n').Where(static l => l.StartsWith("| ", StringComparison.Ordinal) && !l.StartsWith("| Guide", StringComparison.Ordinal)).ToList();
            Assert.Equal(4, rows.Count);
            // Every guide generated tokens and has a TPOT (the tiny shape's can round to 0.00 ms: no assertion on speed).
            Assert.All(rows, row =>
            {
                Assert.True(double.Parse(Cells(row)[2], System.Globalization.CultureInfo.InvariantCulture) > 0, row);
                Assert.True(double.Parse(Cells(row)[3], System.Globalization.CultureInfo.InvariantCulture) >= 0, row);
            });
        }
        finally
        {
            File.Delete(output);
        }
    }

    private static string[] Cells(string line) => [.. line.Trim('|').Split('|').Select(c => c.Trim())];
}
