using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Benchmarks.Hosting;
using Benchmarks.Load;
using Benchmarks.Report;

namespace Benchmarks.Faults;

/// <summary>
/// The <c>faults</c> scenario: two emulator replicas, a real redis-server and the gateway as real
/// processes under a steady load of streamed chat completions; one fault at a time (Redis killed,
/// the gateway SIGTERMed and replaced, one replica killed with SIGKILL), every request classified
/// by what arrived on the wire. Returns the markdown section.
/// </summary>
internal static partial class FaultScenario
{
    public const string Name = "faults";
    private const string Model = "gpt-j-6b";
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(30);
    private const int MaxTokens = 40;
    private const int Concurrency = 24;

    public static async Task<string> RunAsync(BenchmarkOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        var before = TimeSpan.FromSeconds(options.Smoke ? 1 : 4);
        var after = TimeSpan.FromSeconds(options.Smoke ? 2 : 6);
        var loadBefore = Machine.LoadAverage();
        var started = Stopwatch.GetTimestamp();
        var results = new List<FaultResult>();
        var notes = new List<string>();

        using var repository = ModelRepository.CreatePaced(Step);
        await using var replicaA = await ComponentHost.StartAsync("emulator", ComponentHost.EmulatorSettings(repository.Path), false, cancellationToken);
        await using var replicaB = await ComponentHost.StartAsync("emulator", ComponentHost.EmulatorSettings(repository.Path), false, cancellationToken);
        await using var redis = RedisProcess.Find();
        if (redis is null)
        {
            notes.Add("redis-server is not installed (apt-get install redis-server): the Redis fault was skipped and the gateway counted quotas in memory.");
        }
        else
        {
            await redis.StartAsync(cancellationToken);
        }
        var settings = GatewaySettings(replicaA, replicaB, redis);
        IComponent gateway = await ComponentHost.StartAsync("gateway", settings, false, cancellationToken);
        try
        {
            using var http = LoadClient.CreateHttpClient();
            var client = new FaultClient(http, ComponentHost.ApiKey, Model, MaxTokens);
            log.WriteLine($"faults: replicas {replicaA.Grpc} {replicaB.Grpc}, gateway {gateway.Rest}, redis {(redis is null ? "none" : redis.ConnectionString)}");
            // Warm-up: JIT, tokenizer, pools, the Redis script; not counted.
            await new FaultLoad(client, gateway.Rest, Concurrency).RunAsync(TimeSpan.FromSeconds(options.Smoke ? 1 : 2), before: null, cancellationToken: cancellationToken);

            if (redis is not null)
            {
                log.WriteLine($"{TimeProvider.System.GetUtcNow():HH:mm:ss} fault: kill -9 redis-server, restart it after 3 s");
                var load = new FaultLoad(client, gateway.Rest, Concurrency);
                results.Add(await load.RunAsync(before + after, before, async ct =>
                {
                    await redis.KillAsync(ct);
                    await Task.Delay(TimeSpan.FromSeconds(3), ct);
                    await redis.StartAsync(ct);
                }, "Redis killed (SIGKILL) mid-load, restarted 3 s later", cancellationToken));
                log.WriteLine($"{TimeProvider.System.GetUtcNow():HH:mm:ss} {results[^1]}");
            }

            {
                log.WriteLine($"{TimeProvider.System.GetUtcNow():HH:mm:ss} fault: SIGTERM the gateway, start a new one (rolling update)");
                var load = new FaultLoad(client, gateway.Rest, Concurrency);
                var old = gateway;
                results.Add(await load.RunAsync(before + after + TimeSpan.FromSeconds(4), before, async ct =>
                {
                    _ = Signal(old.ProcessId!.Value, 15); // SIGTERM
                    gateway = await ComponentHost.StartAsync("gateway", settings, false, ct);
                    load.Target = gateway.Rest; // the Service's endpoints now name the new pod
                }, "gateway SIGTERM mid-load; a new gateway process is started at once and the client switches to it once it is ready", cancellationToken));
                var exited = await Task.WhenAny(old.Exited, Task.Delay(TimeSpan.FromSeconds(30), cancellationToken)) == old.Exited;
                notes.Add(exited ? "The SIGTERMed gateway process exited by itself after its drain." : "The SIGTERMed gateway process had not exited 30 s after the load phase.");
                await old.DisposeAsync();
                log.WriteLine($"{TimeProvider.System.GetUtcNow():HH:mm:ss} {results[^1]}");
            }

            {
                log.WriteLine($"{TimeProvider.System.GetUtcNow():HH:mm:ss} fault: kill -9 one emulator replica");
                var load = new FaultLoad(client, gateway.Rest, Concurrency);
                results.Add(await load.RunAsync(before + after, before, ct =>
                {
                    _ = Signal(replicaB.ProcessId!.Value, 9); // SIGKILL
                    return Task.CompletedTask;
                }, "one of two Triton replicas killed (SIGKILL) mid-load, not restarted", cancellationToken));
                // Is the surviving replica itself serving? (tells a gateway routing fault from a dead engine)
                try
                {
                    using var probe = await http.GetAsync(new Uri(replicaA.Rest, "/v2/health/ready"), cancellationToken);
                    notes.Add($"After the replica fault the surviving replica answered /v2/health/ready with {(int)probe.StatusCode} (process {(replicaA.Exited.IsCompleted ? "exited" : "alive")}).");
                }
                catch (HttpRequestException ex)
                {
                    notes.Add($"After the replica fault the surviving replica did not answer /v2/health/ready: {ex.Message} (process {(replicaA.Exited.IsCompleted ? "exited" : "alive")}).");
                }
                log.WriteLine($"{TimeProvider.System.GetUtcNow():HH:mm:ss} {results[^1]}");
            }
        }
        finally
        {
            await gateway.DisposeAsync();
        }
        return ToMarkdown(options, results, notes, loadBefore, Machine.LoadAverage(), Stopwatch.GetElapsedTime(started), redis is not null);
    }

    private static Dictionary<string, string> GatewaySettings(IComponent a, IComponent b, RedisProcess? redis)
    {
        var settings = ComponentHost.GatewaySettings(a.Grpc);
        settings["Gateway:Triton:Endpoints:1"] = b.Grpc.ToString();
        settings["Gateway:ApiKeys:bench:RequestsPerMinute"] = "1000000";
        settings["Gateway:ApiKeys:bench:TokensPerMinute"] = "1000000000";
        settings["Gateway:Shutdown:AcceptWindow"] = "00:00:01";
        settings["Gateway:Shutdown:DrainTimeout"] = "00:00:15";
        if (redis is not null)
        {
            settings["Gateway:Quotas:Redis"] = redis.ConnectionString;
        }
        return settings;
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Signal(int pid, int signal);

    private static string ToMarkdown(BenchmarkOptions options, List<FaultResult> results, List<string> notes, string loadBefore, string loadAfter, TimeSpan elapsed, bool hadRedis)
    {
        var c = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.Append("## Faults\n\n");
        md.Append(c, $"Run {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC in {elapsed.TotalSeconds:0} s{(options.Smoke ? " (smoke)" : "")}: two emulator replicas, ")
          .Append(hadRedis ? "a real redis-server (shared quotas), " : "no redis-server, ")
          .Append(c, $"the gateway, each its own process; {Concurrency} concurrent streamed chat completions of {MaxTokens} tokens at {Step.TotalMilliseconds:0} ms per token, back to back, {(options.Smoke ? 1 : 4)} s before each fault and at least {(options.Smoke ? 2 : 6)} s after it.\n\n");
        md.Append("Machine: ").Append(Machine.Describe()).Append("  \n");
        md.Append("Load average (1/5/15 min) before: ").Append(loadBefore).Append(", after: ").Append(loadAfter).Append("  \n");
        md.Append("Command: `dotnet run -c Release --project Benchmarks -- ").Append(string.Join(' ', Environment.GetCommandLineArgs().Skip(1))).Append("`\n\n");
        md.Append("| Fault | Requests sent | Succeeded | Clean error | Silent | Refused (no listener) | Recovery s |\n|---|---:|---:|---:|---:|---:|---:|\n");
        foreach (var r in results)
        {
            md.Append(c, $"| {r.Fault} | {r.Sent} | {r.Succeeded} | {r.CleanErrors} | {r.Silent} | {r.Refused} | {(r.RecoverySeconds is { } s ? s.ToString("0.00", c) : "not recovered")} |\n");
        }
        md.Append("\nWhat the failed requests got (count × outcome: detail):\n\n");
        foreach (var r in results)
        {
            md.Append("- ").Append(r.Fault).Append(": ").Append(r.Details.Count == 0 ? "none failed" : string.Join("; ", r.Details)).Append('\n');
        }
        foreach (var note in notes)
        {
            md.Append("- ").Append(note).Append('\n');
        }
        md.Append("""

            **Definitions.** Every request is counted once, by what reached the client. *Succeeded*: a
            200 SSE stream with all completion tokens (usage `completion_tokens` = max_tokens), a
            `finish_reason` and a final `[DONE]`. *Clean error*: an HTTP error status whose body is an
            OpenAI error object (`{"error":{"message":…,"type":…}}`), or an SSE `data: {"error":…}` event
            followed by `[DONE]`. *Silent*: anything else that ended — a stream or connection that ended
            without `[DONE]` and without an error event, a 200 with a partial body, a reset, an error
            status without an OpenAI body (must be 0). *Refused (no listener)*: connection refused,
            nothing was started. *Recovery*: from the fault until every request started afterwards
            succeeds — the start of the first request after the last unsuccessful one that started
            after the fault, minus the fault time (0 when none failed; "not recovered" when the last
            one failed). For the gateway SIGTERM this includes starting a fresh gateway process, as a
            rolling update starts a new pod: the load client keeps sending to the old gateway (its
            accept window, then 503 + Retry-After, then no listener) until the new process reports
            ready, then sends to the new one — so it is "SIGTERM → a new gateway serves". Requests in
            flight at the fault that fail count in the columns but do not move the recovery time.

            """);
        return md.ToString();
    }
}

/// <summary>What one fault phase measured.</summary>
internal sealed record FaultResult(string Fault, int Sent, int Succeeded, int CleanErrors, int Silent, int Refused, double? RecoverySeconds, List<string> Details)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Fault}: sent {Sent}, ok {Succeeded}, clean {CleanErrors}, silent {Silent}, refused {Refused}, recovery {RecoverySeconds?.ToString("0.00", CultureInfo.InvariantCulture) ?? "none"} s; {string.Join("; ", Details)}");
}

/// <summary>
/// Closed-loop load: <c>concurrency</c> workers stream back to back for a duration; the fault runs
/// at <c>before</c>. <see cref="Target"/> may change while it runs (a new gateway).
/// </summary>
internal sealed class FaultLoad(FaultClient client, Uri target, int concurrency)
{
    private volatile Uri _target = target;

    public Uri Target
    {
        get => _target;
        set => _target = value;
    }

    public async Task<FaultResult> RunAsync(TimeSpan duration, TimeSpan? before, Func<CancellationToken, Task>? fault = null, string name = "", CancellationToken cancellationToken = default)
    {
        var samples = new List<FaultSample>();
        var start = Stopwatch.GetTimestamp();
        var end = start + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            while (Stopwatch.GetTimestamp() < end)
            {
                var sample = await client.StreamAsync(Target, cancellationToken);
                lock (samples)
                {
                    samples.Add(sample);
                }
                if (sample.Outcome != FaultOutcome.Succeeded)
                {
                    // A client backs off before it retries (SDKs honour Retry-After); without it the
                    // workers would flood the 2 shared cores with instant 503s and starve the gateway's probes.
                    await Task.Delay(TimeSpan.FromMilliseconds(250), cancellationToken);
                }
            }
        }, cancellationToken)).ToArray();
        long faultAt = 0;
        Task faulting = Task.CompletedTask;
        if (before is { } wait && fault is not null)
        {
            await Task.Delay(wait, cancellationToken);
            faultAt = Stopwatch.GetTimestamp();
            faulting = fault(cancellationToken);
        }
        await Task.WhenAll(workers);
        await faulting;
        return Summarise(name, samples, faultAt);
    }

    internal static FaultResult Summarise(string name, List<FaultSample> samples, long faultAt)
    {
        var counts = new int[4];
        foreach (var s in samples)
        {
            counts[(int)s.Outcome]++;
        }
        double? recovery = 0;
        var after = samples.Where(s => s.StartedAt >= faultAt).OrderBy(s => s.StartedAt).ToList();
        var lastBad = after.FindLastIndex(s => s.Outcome != FaultOutcome.Succeeded);
        if (lastBad == after.Count - 1 && lastBad >= 0)
        {
            recovery = null;
        }
        else if (lastBad >= 0)
        {
            recovery = (after[lastBad + 1].StartedAt - faultAt) / (double)Stopwatch.Frequency;
        }
        var details = samples.Where(s => s.Outcome != FaultOutcome.Succeeded)
            .GroupBy(s => $"{s.Outcome}: {s.Detail.Replace('|', '/')}")
            .OrderByDescending(g => g.Count())
            .Select(g => string.Create(CultureInfo.InvariantCulture, $"{g.Count()} × {g.Key}"))
            .ToList();
        return new FaultResult(name, samples.Count, counts[(int)FaultOutcome.Succeeded], counts[(int)FaultOutcome.CleanError],
            counts[(int)FaultOutcome.Silent], counts[(int)FaultOutcome.Refused], recovery, details);
    }
}
