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
    private const int LedgerRounds = 6;
    private const int CapacityConnections = 10;

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
        // Both gateways run side by side for the whole comparison, and their rounds alternate (A B, B A, …):
        // load from anything else on the machine drifts over minutes, and then falls on both alike.
        await using var plainGateway = await ComponentHost.StartAsync("gateway", plain, false, cancellationToken);
        await using var gateway = await ComponentHost.StartAsync("gateway", withLedger, false, cancellationToken);
        var plainClient = new LoadClient(http, plainGateway.Rest, direct, ComponentHost.ApiKey);
        var client = new LoadClient(http, gateway.Rest, direct, ComponentHost.ApiKey);
        var warmUp = TimeSpan.FromSeconds(options.Smoke ? 1 : 3);
        await OpenLoopAsync(plainClient, rate, warmUp, null, cancellationToken);
        await OpenLoopAsync(client, rate, warmUp, null, cancellationToken);
        var rounds = options.Smoke ? 1 : LedgerRounds;
        var round = options.Smoke ? duration : duration / 3;
        var without = new List<Phase>();
        var with = new List<Phase>();
        var capacityWithout = new List<Phase>();
        var capacityWith = new List<Phase>();
        for (var i = 0; i < rounds; i++)
        {
            var order = i % 2 == 0
                ? new[] { (plainClient, plainGateway.ProcessId, without, capacityWithout), (client, gateway.ProcessId, with, capacityWith) }
                : new[] { (client, gateway.ProcessId, with, capacityWith), (plainClient, plainGateway.ProcessId, without, capacityWithout) };
            foreach (var (target, pid, open, closed) in order)
            {
                open.Add(await OpenLoopAsync(target, rate, round, pid, cancellationToken, postgres.Cpu));
                closed.Add(await ClosedLoopAsync(target, CapacityConnections, round, pid, cancellationToken, postgres.Cpu));
            }
            log.WriteLine($"ledger: round {i + 1}/{rounds}: without {without[^1]} / capacity {capacityWithout[^1]}; with {with[^1]} / capacity {capacityWith[^1]}");
        }
        {
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
            rows.Add(Row($"with the ledger, PostgreSQL stopped {outage.TotalSeconds:0} s mid-run", outagePhase, null));
            rows.Add(string.Create(CultureInfo.InvariantCulture,
                $"\nOutage: {outagePhase.Sent} requests sent in {(duration + outage).TotalSeconds:0} s with PostgreSQL down for {outage.TotalSeconds:0} s of it; {outagePhase.Ok} answered 200. "
                + $"Afterwards the database holds {after - before} new rows ({okRows} with status ok): {Math.Max(0, outagePhase.Ok - okRows)} answered requests without a row, "
                + $"{Math.Max(0, (after - before) - outagePhase.Sent)} rows more than requests sent."));
        }
        var md = new StringBuilder();
        md.Append("## Ledger (written by --scenarios ledger)\n\n");
        md.Append("Machine: ").Append(Machine.Describe()).Append("  \n");
        md.Append("Command: `dotnet run -c Release --project Benchmarks -- ").Append(string.Join(' ', Environment.GetCommandLineArgs().Skip(1))).Append("`\n\n");
        md.Append(CultureInfo.InvariantCulture, $"Two gateway processes side by side on one emulator (zero-latency model), one without the ledger and one writing it to PostgreSQL 15 (durable: fsync on); {rounds} rounds, the two alternating within each round (A B, then B A). ");
        md.Append(CultureInfo.InvariantCulture, $"Each round, per gateway: {round.TotalSeconds:0} s open loop at {rate} unary completions/s ({MaxTokens} tokens each), then {round.TotalSeconds:0} s closed loop with {CapacityConnections} connections (its capacity on this machine). ");
        md.Append("CPU = the gateway process's user + system time per answered request (/proc, 10 ms ticks).\n\n");
        md.Append("| phase | sent | 200 | achieved req/s | p50 ms | p99 ms | gateway CPU µs/request | PostgreSQL CPU µs/request |\n|---|---|---|---|---|---|---|---|\n");
        var openWithout = Phase.Sum(without);
        var openWith = Phase.Sum(with);
        var closedWithout = Phase.Sum(capacityWithout);
        var closedWith = Phase.Sum(capacityWith);
        md.Append(Row($"without the ledger, {rate} req/s offered", openWithout, null)).Append('\n');
        md.Append(Row($"with the ledger, {rate} req/s offered", openWith, openWithout)).Append('\n');
        md.Append(Row($"without the ledger, closed loop ({CapacityConnections} connections)", closedWithout, null)).Append('\n');
        md.Append(Row($"with the ledger, closed loop ({CapacityConnections} connections)", closedWith, closedWithout)).Append('\n');
        foreach (var row in rows)
        {
            md.Append(row).Append('\n');
        }
        var cost = (openWith.CpuMicrosPerRequest - openWithout.CpuMicrosPerRequest) / openWithout.CpuMicrosPerRequest;
        var throughput = (openWith.Achieved - openWithout.Achieved) / openWithout.Achieved;
        var capacity = (closedWith.Achieved - closedWithout.Achieved) / closedWithout.Achieved;
        var perRound = string.Join(", ", with.Zip(without, (w, o) => Percent((w.CpuMicrosPerRequest - o.CpuMicrosPerRequest) / o.CpuMicrosPerRequest)));
        var perRoundCapacity = string.Join(", ", capacityWith.Zip(capacityWithout, (w, o) => Percent((w.Achieved - o.Achieved) / o.Achieved)));
        md.Append(CultureInfo.InvariantCulture, $"\nLedger cost at {rate} req/s offered: {Percent(cost)} gateway CPU per request (per round: {perRound}); achieved throughput {Percent(throughput)}. ");
        md.Append(CultureInfo.InvariantCulture, $"Capacity (closed loop): {Percent(capacity)} requests/s with the ledger against without (per round: {perRoundCapacity}). ");
        md.Append(CultureInfo.InvariantCulture, $"PostgreSQL shares the machine's cores: in the closed loop it used {closedWith.DatabaseCpuMicrosPerRequest:0} µs of CPU per request written (against the gateway's own {closedWith.CpuMicrosPerRequest:0} µs), CPU a separate database (Cloud SQL on GKE) does not take from the gateway. ");
        md.Append("When the achieved rate is below the offered one, the machine (load generator, emulator, both gateways and PostgreSQL on the same cores) was the limit.\n");
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
        $"| {name} | {phase.Sent} | {phase.Ok} | {phase.Achieved:0} | {phase.P50:0.0} | {phase.P99:0.0} | {phase.CpuMicrosPerRequest:0}{(baseline is { } b ? $" ({Percent((phase.CpuMicrosPerRequest - b.CpuMicrosPerRequest) / b.CpuMicrosPerRequest)})" : "")} | {phase.DatabaseCpuMicrosPerRequest:0} |");

    private static string Percent(double fraction) => Math.Round(fraction, 4).ToString("+0.0%;-0.0%;0.0%", CultureInfo.InvariantCulture);

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

    internal readonly record struct Phase(long Sent, long Ok, double Achieved, double P50, double P99, double CpuMicrosPerRequest, double Seconds = 0, double DatabaseCpuMicrosPerRequest = 0)
    {
        /// <summary>Rounds of one configuration as one phase: totals summed, rates over the summed time, percentiles the rounds' medians.</summary>
        public static Phase Sum(IReadOnlyList<Phase> rounds)
        {
            var seconds = rounds.Sum(r => r.Seconds);
            var ok = rounds.Sum(r => r.Ok);
            var cpu = rounds.Sum(r => r.CpuMicrosPerRequest * r.Ok);
            var database = rounds.Sum(r => r.DatabaseCpuMicrosPerRequest * r.Ok);
            double Median(Func<Phase, double> pick) => rounds.Select(pick).Order().ElementAt(rounds.Count / 2);
            return new Phase(rounds.Sum(r => r.Sent), ok, ok / seconds, Median(r => r.P50), Median(r => r.P99), ok == 0 ? 0 : cpu / ok, seconds, ok == 0 ? 0 : database / ok);
        }

        public override string ToString() => string.Create(CultureInfo.InvariantCulture,
            $"sent {Sent}, 200 {Ok}, {Achieved:0} req/s, p50 {P50:0.0} ms, p99 {P99:0.0} ms, CPU {CpuMicrosPerRequest:0} µs/request");
    }

    /// <summary>Sends at <paramref name="rate"/> per second for <paramref name="duration"/>, whatever the answers take (open loop).</summary>
    private static async Task<Phase> OpenLoopAsync(LoadClient client, int rate, TimeSpan duration, int? pid, CancellationToken cancellationToken, Func<TimeSpan>? database = null)
    {
        var cpuBefore = pid is { } p ? CpuTime(p) : TimeSpan.Zero;
        var databaseBefore = database?.Invoke() ?? TimeSpan.Zero;
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
        var databaseCpu = (database?.Invoke() ?? TimeSpan.Zero) - databaseBefore;
        return new Phase(total, ok.Length, ok.Length / elapsed.TotalSeconds, Percentile(0.5), Percentile(0.99),
            ok.Length == 0 ? 0 : cpu.TotalMicroseconds / ok.Length, elapsed.TotalSeconds, ok.Length == 0 ? 0 : databaseCpu.TotalMicroseconds / ok.Length);
    }

    /// <summary><paramref name="connections"/> requests in flight at all times for <paramref name="duration"/>: what the gateway can serve.</summary>
    private static async Task<Phase> ClosedLoopAsync(LoadClient client, int connections, TimeSpan duration, int? pid, CancellationToken cancellationToken, Func<TimeSpan>? database = null)
    {
        var cpuBefore = pid is { } p ? CpuTime(p) : TimeSpan.Zero;
        var databaseBefore = database?.Invoke() ?? TimeSpan.Zero;
        var started = Stopwatch.GetTimestamp();
        var workers = Enumerable.Range(0, connections).Select(_ => Task.Run(async () =>
        {
            var results = new List<RequestResult>();
            while (Stopwatch.GetElapsedTime(started) < duration)
            {
                results.Add(await client.CompleteAsync(Target.Gateway, MaxTokens, cancellationToken));
            }
            return results;
        }, cancellationToken)).ToArray();
        var all = (await Task.WhenAll(workers)).SelectMany(r => r).ToArray();
        var elapsed = Stopwatch.GetElapsedTime(started);
        var cpu = pid is { } q ? CpuTime(q) - cpuBefore : TimeSpan.Zero;
        var ok = all.Where(r => r.Ok).Select(r => r.TotalMs).Order().ToArray();
        double Percentile(double p) => ok.Length == 0 ? 0 : ok[Math.Min(ok.Length - 1, (int)(p * ok.Length))];
        var databaseCpu = (database?.Invoke() ?? TimeSpan.Zero) - databaseBefore;
        return new Phase(all.Length, ok.Length, ok.Length / elapsed.TotalSeconds, Percentile(0.5), Percentile(0.99),
            ok.Length == 0 ? 0 : cpu.TotalMicroseconds / ok.Length, elapsed.TotalSeconds, ok.Length == 0 ? 0 : databaseCpu.TotalMicroseconds / ok.Length);
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
