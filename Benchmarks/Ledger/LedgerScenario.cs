using System.Diagnostics;
using System.Globalization;
using System.Text;
using Benchmarks.Hosting;
using Benchmarks.Load;
using Benchmarks.Report;

namespace Benchmarks.Ledger;

/// <summary>
/// The <c>ledger</c> scenario: what the usage ledger costs and whether it loses rows. One emulator
/// (zero-latency model), a real PostgreSQL (durable: fsync on), and two gateway processes, one
/// without the ledger and one with it, each driven open-loop at the same rate (default 1,000
/// unary completions/s). Cost = the gateway process's CPU time per request and its latency,
/// with against without. Then the rate again on the ledger gateway while PostgreSQL is stopped for
/// 10 s mid-run: every answered request must end as exactly one row once it is back.
/// </summary>
internal static class LedgerScenario
{
    public const string Name = "ledger";
    private const int MaxTokens = 8;

    public static async Task<string> RunAsync(BenchmarkOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        var rate = options.Smoke ? 100 : options.LedgerRate;
        var duration = options.Smoke ? TimeSpan.FromSeconds(2) : options.Duration;
        var outage = options.Smoke ? TimeSpan.FromSeconds(2) : TimeSpan.FromSeconds(10);
        await using var postgres = PostgresProcess.Find();
        if (postgres is null)
        {
            return "## Ledger\n\nPostgreSQL is not installed (apt-get install postgresql): the ledger scenario did not run.\n";
        }
        await postgres.InitializeAsync(cancellationToken);
        using var repository = ModelRepository.Create(TimeSpan.FromMilliseconds(50), 1000);
        await using var emulator = await ComponentHost.StartAsync("emulator", ComponentHost.EmulatorSettings(repository.Path), false, cancellationToken);
        var plain = ComponentHost.GatewaySettings(emulator.Grpc);
        var spill = Directory.CreateTempSubdirectory("llm-gateway-bench-spill-").FullName;
        var withLedger = new Dictionary<string, string>(plain)
        {
            ["Gateway:Ledger:ConnectionString"] = postgres.ConnectionString,
            ["Gateway:Ledger:SpillDirectory"] = spill,
        };
        var rows = new List<string>();
        using var http = LoadClient.CreateHttpClient();
        using var direct = new DirectGrpcClient(emulator.Grpc);
        Phase? without = null, with = null;
        await using (var gateway = await ComponentHost.StartAsync("gateway", plain, false, cancellationToken))
        {
            var client = new LoadClient(http, gateway.Rest, direct, ComponentHost.ApiKey);
            await OpenLoopAsync(client, rate, TimeSpan.FromSeconds(options.Smoke ? 1 : 3), null, cancellationToken); // warm-up
            without = await OpenLoopAsync(client, rate, duration, gateway.ProcessId, cancellationToken);
            log.WriteLine($"ledger: without the ledger {without}");
        }
        await using (var gateway = await ComponentHost.StartAsync("gateway", withLedger, false, cancellationToken))
        {
            var client = new LoadClient(http, gateway.Rest, direct, ComponentHost.ApiKey);
            await OpenLoopAsync(client, rate, TimeSpan.FromSeconds(options.Smoke ? 1 : 3), null, cancellationToken);
            with = await OpenLoopAsync(client, rate, duration, gateway.ProcessId, cancellationToken);
            log.WriteLine($"ledger: with the ledger {with}");

            var before = await WaitForRowsAsync(postgres, -1, cancellationToken);
            var okBefore = await postgres.ScalarAsync("SELECT count(*) FROM usage_records WHERE status = 'ok'", cancellationToken);
            log.WriteLine($"ledger: {TimeProvider.System.GetUtcNow():HH:mm:ss} outage phase: PostgreSQL stopped for {outage.TotalSeconds:0} s mid-load");
            var outageTask = Task.Run(async () =>
            {
                await Task.Delay(duration / 4, cancellationToken);
                await postgres.StopAsync(cancellationToken);
                await Task.Delay(outage, cancellationToken);
                await postgres.StartAsync(cancellationToken);
            }, cancellationToken);
            var outagePhase = await OpenLoopAsync(client, rate, duration + outage, gateway.ProcessId, cancellationToken);
            await outageTask;
            var expected = before + outagePhase.Sent; // every request that reached the gateway is one row (ok, failed or cancelled)
            var after = await WaitForRowsAsync(postgres, expected, cancellationToken);
            var okRows = await postgres.ScalarAsync("SELECT count(*) FROM usage_records WHERE status = 'ok'", cancellationToken) - okBefore;
            log.WriteLine($"ledger: outage {outagePhase}; rows {after - before} of {outagePhase.Sent} sent, ok rows {okRows} of {outagePhase.Ok} answered 200");
            rows.Add(Row("with the ledger, PostgreSQL stopped 10 s mid-run", outagePhase, null));
            rows.Add(string.Create(CultureInfo.InvariantCulture,
                $"\nOutage: {outagePhase.Sent} requests sent in {(duration + outage).TotalSeconds:0} s with PostgreSQL down for {outage.TotalSeconds:0} s of it; {outagePhase.Ok} answered 200. "
                + $"Afterwards the database holds {after - before} new rows ({okRows} with status ok): {Math.Max(0, outagePhase.Ok - okRows)} answered requests without a row, "
                + $"{Math.Max(0, (after - before) - outagePhase.Sent)} rows more than requests sent."));
        }
        var md = new StringBuilder();
        md.Append("## Ledger (written by --scenarios ledger)\n\n");
        md.Append("Machine: ").Append(Machine.Describe()).Append("  \n");
        md.Append("Command: `dotnet run -c Release --project Benchmarks -- ").Append(string.Join(' ', Environment.GetCommandLineArgs().Skip(1))).Append("`\n\n");
        md.Append(CultureInfo.InvariantCulture, $"Open loop at {rate} unary completions/s ({MaxTokens} tokens each), {duration.TotalSeconds:0} s per phase, gateway and emulator as separate processes, PostgreSQL 15 durable (fsync on). ");
        md.Append("CPU = the gateway process's user + system time per answered request.\n\n");
        md.Append("| phase | sent | 200 | achieved req/s | p50 ms | p99 ms | gateway CPU µs/request |\n|---|---|---|---|---|---|---|\n");
        md.Append(Row("without the ledger", without!.Value, null)).Append('\n');
        md.Append(Row("with the ledger (PostgreSQL)", with!.Value, without)).Append('\n');
        foreach (var row in rows)
        {
            md.Append(row).Append('\n');
        }
        var cost = (with.Value.CpuMicrosPerRequest - without.Value.CpuMicrosPerRequest) / without.Value.CpuMicrosPerRequest;
        var throughput = (with.Value.Achieved - without.Value.Achieved) / without.Value.Achieved;
        md.Append(CultureInfo.InvariantCulture, $"\nLedger cost: {cost:+0.0%;-0.0%} gateway CPU per request; achieved throughput with the ledger {throughput:+0.0%;-0.0%} against without, at {rate} req/s offered.");
        md.Append(" When the achieved rate is below the offered one, the machine (load generator, emulator and gateway on the same cores) was the limit, for both phases alike.\n");
        try
        {
            Directory.Delete(spill, recursive: true);
        }
        catch (IOException)
        {
        }
        return md.ToString();
    }

    private static string Row(string name, Phase phase, Phase? baseline) => string.Create(CultureInfo.InvariantCulture,
        $"| {name} | {phase.Sent} | {phase.Ok} | {phase.Achieved:0} | {phase.P50:0.0} | {phase.P99:0.0} | {phase.CpuMicrosPerRequest:0}{(baseline is { } b ? $" ({(phase.CpuMicrosPerRequest - b.CpuMicrosPerRequest) / b.CpuMicrosPerRequest:+0.0%;-0.0%})" : "")} |");

    private static async Task<long> WaitForRowsAsync(PostgresProcess postgres, long expected, CancellationToken cancellationToken)
    {
        // The writer is asynchronous and replays spill files once the database answers: wait until the count stops changing.
        var deadline = Stopwatch.StartNew();
        long last = -1;
        var stableSince = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(90))
        {
            long count;
            try
            {
                count = await postgres.ScalarAsync("SELECT count(*) FROM usage_records", cancellationToken);
            }
            catch (Npgsql.NpgsqlException)
            {
                await Task.Delay(200, cancellationToken);
                continue;
            }
            if (count == expected)
            {
                return count;
            }
            if (count != last)
            {
                last = count;
                stableSince.Restart();
            }
            else if (stableSince.Elapsed > TimeSpan.FromSeconds(expected < 0 ? 2 : 15))
            {
                return count;
            }
            await Task.Delay(200, cancellationToken);
        }
        return last;
    }

    internal readonly record struct Phase(long Sent, long Ok, double Achieved, double P50, double P99, double CpuMicrosPerRequest)
    {
        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"sent {Sent}, 200 {Ok}, {Achieved:0} req/s, p50 {P50:0.0} ms, p99 {P99:0.0} ms, CPU {CpuMicrosPerRequest:0} µs/request");
    }

    /// <summary>Sends at <paramref name="rate"/> per second for <paramref name="duration"/>, whatever the answers take (open loop).</summary>
    private static async Task<Phase> OpenLoopAsync(LoadClient client, int rate, TimeSpan duration, int? pid, CancellationToken cancellationToken)
    {
        var cpuBefore = pid is { } p ? CpuTime(p) : TimeSpan.Zero;
        var started = Stopwatch.GetTimestamp();
        var total = (long)(rate * duration.TotalSeconds);
        var tasks = new List<Task<RequestResult>>((int)total);
        for (long i = 0; i < total; i++)
        {
            var due = TimeSpan.FromSeconds(i / (double)rate);
            var wait = due - Stopwatch.GetElapsedTime(started);
            if (wait > TimeSpan.FromMilliseconds(1))
            {
                await Task.Delay(wait, cancellationToken);
            }
            tasks.Add(client.CompleteAsync(Target.Gateway, MaxTokens, cancellationToken));
        }
        var results = await Task.WhenAll(tasks);
        var elapsed = Stopwatch.GetElapsedTime(started);
        var cpu = pid is { } q ? CpuTime(q) - cpuBefore : TimeSpan.Zero;
        var ok = results.Where(r => r.Ok).Select(r => r.TotalMs).Order().ToArray();
        double Percentile(double p) => ok.Length == 0 ? 0 : ok[Math.Min(ok.Length - 1, (int)(p * ok.Length))];
        return new Phase(total, ok.Length, ok.Length / elapsed.TotalSeconds, Percentile(0.5), Percentile(0.99),
            ok.Length == 0 ? 0 : cpu.TotalMicroseconds / ok.Length);
    }

    /// <summary>utime + stime of a process (/proc/&lt;pid&gt;/stat, clock ticks of 10 ms).</summary>
    private static TimeSpan CpuTime(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromMilliseconds(ticks * 10);
    }
}
