using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Benchmarks.Hosting;
using Benchmarks.Load;
using Benchmarks.Report;

namespace Benchmarks.Prefix;

/// <summary>
/// The <c>prefix</c> scenario: two emulator replicas serving the TensorRT-LLM ensemble with KV-cache
/// reuse (A100 timing) and a gateway, each its own process. Multi-turn chat from many tenants, each
/// tenant with its own long system prompt, arriving open-loop (Poisson) near the replicas' capacity,
/// routed three ways in turn by a fresh gateway: prefix-aware (the default scorers), load-only
/// (prefix weight 0: the router before prefix affinity) and round robin; then a no-reuse workload
/// (every prompt random) prefix-aware vs load-only. Every phase uses its own prompts, so nothing a
/// previous phase cached helps it. Plus the scorer microbenchmark. Returns the markdown section.
/// </summary>
internal static class PrefixScenario
{
    public const string Name = "prefix";
    private const string Model = "gpt-j-6b";
    private const int KvTokens = 61_440; // models-trtllm's own pool: 960 blocks

    private sealed record Settings(int Tenants, int UsersPerTenant, int SystemWords, int TurnWords, int Turns, int MaxTokens,
        double SharedRate, double RandomRate, TimeSpan Warmup, TimeSpan Measured, int MicroRequests);

    private sealed record Policy(string Name, string Description, Dictionary<string, string> Gateway);

    private sealed record PhaseResult(string Workload, string Policy, int Sent, int Succeeded, int Failed, double P50, double P90, double P99,
        double Throughput, double TokensPerSecond, double EngineHitRatio, double PromptTokens, string Spread, string? FirstError);

    public static async Task<string> RunAsync(BenchmarkOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        var s = options.Smoke
            ? new Settings(4, 2, 200, 10, 3, 8, 4, 4, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), 2_000)
            : new Settings(24, 4, 3400, 25, 4, 16, options.PrefixRate, options.PrefixRandomRate, TimeSpan.FromSeconds(5), options.PrefixDuration, 100_000);
        var loadBefore = Machine.LoadAverage();
        var started = Stopwatch.GetTimestamp();
        var results = new List<PhaseResult>();
        log.WriteLine("prefix: scorer microbenchmark ...");
        var micro = await ScorerMicrobenchmark.RunAsync(s.MicroRequests, cancellationToken);
        log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"prefix: scoring {micro.TotalMicros:0.00} µs/request (hash {micro.HashMicros:0.00}, pick {micro.PickMicros:0.00}), {micro.RememberedBlocks} blocks remembered"));

        using var repository = PrefixRepository.Create(KvTokens);
        var metricsPorts = new[] { FreePort(), FreePort() };
        await using var replicaA = await ComponentHost.StartAsync("emulator", Emulator(repository.Path, metricsPorts[0]), false, cancellationToken);
        await using var replicaB = await ComponentHost.StartAsync("emulator", Emulator(repository.Path, metricsPorts[1]), false, cancellationToken);
        var metrics = metricsPorts.Select(p => new Uri($"http://127.0.0.1:{p}")).ToArray();
        using var http = LoadClient.CreateHttpClient();
        log.WriteLine($"prefix: replicas {replicaA.Grpc} {replicaB.Grpc} (metrics {metrics[0]} {metrics[1]})");

        Policy[] shared =
        [
            new("prefix-aware", "default scorers (prefix weight 16, load gate 1)", []),
            new("load-only", "prefix weight 0: in-flight + queue + KV scorers, as before prefix affinity", new() { ["Gateway:Routing:Scorers:PrefixWeight"] = "0" }),
            new("round robin", "Gateway:Routing:RoundRobin=true", new() { ["Gateway:Routing:RoundRobin"] = "true" }),
        ];
        var phase = 0;
        foreach (var policy in shared)
        {
            results.Add(await RunPhaseAsync("shared prefix", policy, phase++, reuse: true, s, s.SharedRate, replicaA, replicaB, metrics, http, log, cancellationToken));
        }
        foreach (var policy in shared[..2])
        {
            results.Add(await RunPhaseAsync("no reuse", policy, phase++, reuse: false, s, s.RandomRate, replicaA, replicaB, metrics, http, log, cancellationToken));
        }
        return ToMarkdown(options, s, results, micro, loadBefore, Machine.LoadAverage(), Stopwatch.GetElapsedTime(started));
    }

    private static Dictionary<string, string> Emulator(string repository, int metricsPort)
    {
        var settings = ComponentHost.EmulatorSettings(repository);
        settings["Emulator:MetricsPort"] = metricsPort.ToString(CultureInfo.InvariantCulture);
        return settings;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task<PhaseResult> RunPhaseAsync(string workload, Policy policy, int phase, bool reuse, Settings s, double rate,
        IComponent a, IComponent b, Uri[] metrics, HttpClient http, TextWriter log, CancellationToken cancellationToken)
    {
        var settings = ComponentHost.BaseGatewaySettings(a.Grpc);
        settings["Gateway:Triton:Endpoints:1"] = b.Grpc.ToString();
        settings["Gateway:Triton:MetricsEndpoints:0"] = metrics[0].ToString();
        settings["Gateway:Triton:MetricsEndpoints:1"] = metrics[1].ToString();
        settings["Gateway:Routing:SaturationThreshold"] = "128";
        settings["Gateway:Routing:ProbeInterval"] = "00:00:00.25";
        // The gateway's memory of each replica sized like the replica's KV pool, so it forgets about as the engine evicts.
        settings["Gateway:Routing:Scorers:PrefixBlocksPerReplica"] = (KvTokens / 64).ToString(CultureInfo.InvariantCulture);
        settings["Gateway:ApiKeys:bench:RequestsPerMinute"] = "1000000";
        settings["Gateway:ApiKeys:bench:TokensPerMinute"] = "1000000000";
        settings[$"Gateway:Models:{Model}:TritonModel"] = "ensemble";
        settings[$"Gateway:Models:{Model}:Contract"] = "tensorrtllm";
        settings[$"Gateway:Models:{Model}:ChatTemplate"] = "gpt-plain";
        settings[$"Gateway:Models:{Model}:ContextWindow"] = "4608";
        settings[$"Gateway:Models:{Model}:MaxInputTokens"] = "4096";
        settings[$"Gateway:Models:{Model}:MaxOutputTokens"] = "1024";
        foreach (var (key, value) in policy.Gateway)
        {
            settings[key] = value;
        }
        await using var gateway = await ComponentHost.StartAsync("gateway", settings, false, cancellationToken);
        var client = new ChatClient(http, gateway.Rest, ComponentHost.ApiKey, Model, s.MaxTokens);
        var workloadState = new ChatWorkload(s.Tenants, s.UsersPerTenant, s.SystemWords, s.TurnWords, s.Turns, seed: 1000 + phase, reuse);
        log.WriteLine($"{TimeProvider.System.GetUtcNow():HH:mm:ss} prefix: {workload} / {policy.Name} at {rate.ToString(CultureInfo.InvariantCulture)} requests/s ...");

        await RunLoadAsync(client, workloadState, rate, s.Warmup, arrivalSeed: 7, measured: null, cancellationToken);
        var reusedBefore = await ReusedBlocksAsync(http, metrics, cancellationToken);
        var samples = new List<(ChatResult Result, double SentAt)>();
        var window = Stopwatch.GetTimestamp();
        // The no-reuse phases run twice as long: a p90 of a few hundred samples, so a 5% difference is above the noise.
        await RunLoadAsync(client, workloadState, rate, reuse ? s.Measured : 2 * s.Measured, arrivalSeed: 11, measured: samples, cancellationToken);
        var elapsed = Stopwatch.GetElapsedTime(window).TotalSeconds;
        var reusedAfter = await ReusedBlocksAsync(http, metrics, cancellationToken);

        var ok = samples.Where(static x => x.Result.Ok).Select(static x => x.Result).ToList();
        var ttfts = ok.Select(static r => r.TtftMs).Order().ToArray();
        var blocks = ok.Sum(static r => Math.Max(0, (r.PromptTokens - 1) / 64));
        var reused = reusedAfter.Zip(reusedBefore, static (x, y) => x - y).ToArray();
        var result = new PhaseResult(workload, policy.Name, samples.Count, ok.Count, samples.Count - ok.Count,
            Percentile(ttfts, 0.5), Percentile(ttfts, 0.9), Percentile(ttfts, 0.99), ok.Count / elapsed, ok.Sum(static r => r.CompletionTokens) / elapsed,
            blocks == 0 ? 0 : reused.Sum() / blocks,
            ok.Count == 0 ? 0 : ok.Average(static r => r.PromptTokens),
            string.Join(" / ", reused.Select(static r => r.ToString("0", CultureInfo.InvariantCulture))),
            samples.FirstOrDefault(static x => !x.Result.Ok).Result.Error);
        log.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  sent {result.Sent}, ok {result.Succeeded}, TTFT p50 {result.P50:0} ms p90 {result.P90:0} ms p99 {result.P99:0} ms, {result.Throughput:0.00} req/s, engine hit ratio {result.EngineHitRatio:P1}, reused blocks per replica {result.Spread}{(result.FirstError is { } e ? ", first error: " + e : "")}"));
        return result;
    }

    /// <summary>
    /// Open loop: arrivals at <paramref name="rate"/> per second (exponential gaps from a fixed seed, so
    /// every policy sees the same arrival times), each the next turn of a random idle user; waits for
    /// every request sent (up to two minutes after the window).
    /// </summary>
    private static async Task RunLoadAsync(ChatClient client, ChatWorkload workload, double rate, TimeSpan duration, int arrivalSeed,
        List<(ChatResult, double)>? measured, CancellationToken cancellationToken)
    {
        var random = new Random(arrivalSeed);
        var start = Stopwatch.GetTimestamp();
        var next = 0.0;
        var running = new List<Task>();
        using var drain = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        while (true)
        {
            next += -Math.Log(1 - random.NextDouble()) / rate;
            if (next >= duration.TotalSeconds)
            {
                break;
            }
            var wait = TimeSpan.FromSeconds(next) - Stopwatch.GetElapsedTime(start);
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, cancellationToken);
            }
            var turn = workload.NextTurn(random);
            var sentAt = next;
            running.Add(Task.Run(async () =>
            {
                var result = await client.SendAsync(turn.Messages, drain.Token);
                workload.Complete(turn, result.Ok ? result.Answer : null);
                if (measured is not null)
                {
                    lock (measured)
                    {
                        measured.Add((result, sentAt));
                    }
                }
            }, cancellationToken));
        }
        drain.CancelAfter(TimeSpan.FromMinutes(2));
        try
        {
            await Task.WhenAll(running);
        }
        catch (OperationCanceledException) when (drain.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
        }
    }

    private static async Task<double[]> ReusedBlocksAsync(HttpClient http, Uri[] metrics, CancellationToken cancellationToken)
    {
        const string series = "nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"reused\",model=\"tensorrt_llm\",version=\"1\"} ";
        var values = new double[metrics.Length];
        for (var i = 0; i < metrics.Length; i++)
        {
            var text = await http.GetStringAsync(new Uri(metrics[i], "/metrics"), cancellationToken);
            var line = text.Split('\n').FirstOrDefault(l => l.StartsWith(series, StringComparison.Ordinal));
            values[i] = line is null ? 0 : double.Parse(line[series.Length..], CultureInfo.InvariantCulture);
        }
        return values;
    }

    private static double Percentile(double[] sorted, double p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];

    private static string ToMarkdown(BenchmarkOptions options, Settings s, List<PhaseResult> results, ScorerMicrobenchmark.Result micro, string loadBefore, string loadAfter, TimeSpan elapsed)
    {
        var c = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.Append("## Prefix-aware routing\n\n");
        md.Append(c, $"Run {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC in {elapsed.TotalSeconds:0} s{(options.Smoke ? " (smoke: numbers meaningless)" : "")}: two emulator replicas serving `models-trtllm/` ")
          .Append(c, $"(ensemble → tensorrt_llm with `enable_kv_cache_reuse`, A100 / GPT-J-6B timing, 64-token blocks, a {KvTokens:N0}-token KV pool per replica shared by running sequences and reusable blocks) ")
          .Append(c, $"and the gateway, each its own process. Shared-prefix workload: {s.Tenants} tenants, each with its own ~{s.SystemWords}-word system prompt, {s.UsersPerTenant} users per tenant in {s.Turns}-turn chats (each turn a ~{s.TurnWords}-word question after the whole history, real answers included), ")
          .Append(c, $"{s.MaxTokens} completion tokens, open-loop Poisson arrivals at {s.SharedRate.ToString(c)} requests/s; no-reuse workload: every prompt random words of the same length at {s.RandomRate.ToString(c)} requests/s. ")
          .Append(c, $"Each phase: a fresh gateway with that routing, its own prompts (nothing cached by an earlier phase helps), {s.Warmup.TotalSeconds:0} s warm-up, then {s.Measured.TotalSeconds:0} s measured ({2 * s.Measured.TotalSeconds:0} s for no reuse; every request sent in the window, waited for to its end).\n\n");
        md.Append("Machine: ").Append(Machine.Describe()).Append("  \n");
        md.Append("Load average (1/5/15 min) before: ").Append(loadBefore).Append(", after: ").Append(loadAfter).Append("  \n");
        md.Append("Command: `dotnet run -c Release --project Benchmarks -- ").Append(string.Join(' ', Environment.GetCommandLineArgs().Skip(1))).Append("`\n\n");
        md.Append("| Workload | Routing | Sent | OK | TTFT p50 ms | TTFT p90 ms | TTFT p99 ms | Requests/s | Tokens/s | Prefix hit ratio (engine) | Mean prompt tokens | Reused blocks A / B |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        foreach (var r in results)
        {
            md.Append(c, $"| {r.Workload} | {r.Policy} | {r.Sent} | {r.Succeeded} | {r.P50:0} | {r.P90:0} | {r.P99:0} | {r.Throughput:0.00} | {r.TokensPerSecond:0} | {r.EngineHitRatio:P1} | {r.PromptTokens:0} | {r.Spread} |\n");
        }
        var aware = results.FirstOrDefault(static r => r is { Workload: "shared prefix", Policy: "prefix-aware" });
        var loadOnly = results.FirstOrDefault(static r => r is { Workload: "shared prefix", Policy: "load-only" });
        var roundRobin = results.FirstOrDefault(static r => r is { Workload: "shared prefix", Policy: "round robin" });
        var randomAware = results.FirstOrDefault(static r => r is { Workload: "no reuse", Policy: "prefix-aware" });
        var randomLoad = results.FirstOrDefault(static r => r is { Workload: "no reuse", Policy: "load-only" });
        if (aware is not null && loadOnly is not null && roundRobin is not null && randomAware is not null && randomLoad is not null)
        {
            md.Append(c, $"\nShared prefix: p90 TTFT prefix-aware is **{roundRobin.P90 / aware.P90:0.0}×** lower than round robin (target ≥ 10×) and **{loadOnly.P90 / aware.P90:0.0}×** lower than load-only (target ≥ 3×); ")
              .Append(c, $"throughput {aware.Throughput / loadOnly.Throughput:0.00}× load-only's (target ≥ 1). No reuse: prefix-aware vs load-only p90 TTFT {(randomAware.P90 / randomLoad.P90 - 1):+0.0%;-0.0%}, throughput {(randomAware.Throughput / randomLoad.Throughput - 1):+0.0%;-0.0%} (target within ±5%).\n");
        }
        md.Append(c, $"\nScorer microbenchmark ({ScorerMicrobenchmark.Replicas} replicas, {micro.RememberedBlocks:N0} remembered blocks, a {ScorerMicrobenchmark.PromptTokens:N0}-token prompt = {micro.PrefixBlocks} blocks, {micro.MatchedBlocks} matched on one replica, {micro.Requests:N0} requests, one thread): ")
          .Append(c, $"**{micro.TotalMicros:0.00} µs per request** (hashing the prompt {micro.HashMicros:0.00} µs + pick, record and release {micro.PickMicros:0.00} µs; target < 20 µs).\n");
        md.Append("""

            *Prefix hit ratio (engine)*: blocks the engines reused (Δ `nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="reused"}`
            over both replicas) ÷ the reusable blocks of the prompts sent ((prompt tokens − 1) ÷ 64 per request).
            *TTFT*: from sending the request to the first content delta on the SSE stream, as the client sees it.
            *Requests/s*, *Tokens/s*: completed requests and completion tokens ÷ the time from the window's start to the last one's end.

            """);
        return md.ToString();
    }
}

/// <summary>
/// The users of the chat workload: <c>tenants × users</c>, each in a chat of up to <c>turns</c>
/// turns behind their tenant's system prompt (or, without reuse, random text of the same length
/// for every request). Thread-safe; a user has at most one request in flight.
/// </summary>
internal sealed class ChatWorkload
{
    private static readonly string[] Words = ("the of and to in is it that for on was with as be at by this have from or one had not but what all were when we there can an your which their said if do will each about how up out them then she many some so these would other into has more her two like him see time could no make than first been its who now people my made over did down only way find use may water long little very after words called just where most know get through back much go good new write our me man too any day same right look think also around another came come work three word must because does part even place well such here take why things help put years different away again off went old number great tell men say small every found still between name should home big give air line set own under read last never us left end along while might next sound below saw something thought both few those always looked show large often together asked house world going want school important until form food keep children feet land side without boy once animals life enough took sometimes four head above kind began almost live page got earth need far hand high year mother light parts country father let night following picture being study second eyes soon times story boys since white days ever paper hard near sentence better best across during today others however sure means knew try told young miles sun ways thing whole hear example heard several change answer room sea against top turned learn point city play toward five using himself usually").Split(' ');

    private readonly Lock _gate = new();
    private readonly string[] _systems;
    private readonly User[] _users;
    private readonly int _turnWords;
    private readonly int _turns;
    private readonly int _systemWords;
    private readonly bool _reuse;
    private readonly Random _text;

    public ChatWorkload(int tenants, int usersPerTenant, int systemWords, int turnWords, int turns, int seed, bool reuse)
    {
        _text = new Random(seed);
        _turnWords = turnWords;
        _turns = turns;
        _systemWords = systemWords;
        _reuse = reuse;
        _systems = [.. Enumerable.Range(0, tenants).Select(t => $"You are the assistant of tenant {seed}-{t}. " + Text(_text, systemWords))];
        _users = [.. Enumerable.Range(0, tenants * usersPerTenant).Select(u => new User(u % tenants))];
    }

    public sealed record Turn(User User, IReadOnlyList<(string Role, string Content)> Messages, string Question);

    public Turn NextTurn(Random random)
    {
        lock (_gate)
        {
            var idle = _users.Where(static u => !u.Busy).ToArray();
            var user = idle.Length > 0 ? idle[random.Next(idle.Length)] : _users[random.Next(_users.Length)];
            user.Busy = true;
            if (!_reuse)
            {
                var words = _systemWords + _turnWords * (1 + random.Next(_turns)) * 2;
                return new Turn(user, [("system", Text(_text, words)), ("user", Text(_text, _turnWords))], "");
            }
            if (user.History.Count >= 2 * _turns)
            {
                user.History.Clear();
            }
            var question = Text(_text, _turnWords);
            List<(string, string)> messages = [("system", _systems[user.Tenant]), .. user.History, ("user", question)];
            return new Turn(user, messages, question);
        }
    }

    public void Complete(Turn turn, string? answer)
    {
        lock (_gate)
        {
            if (_reuse && answer is not null)
            {
                turn.User.History.Add(("user", turn.Question));
                turn.User.History.Add(("assistant", answer.Trim()));
            }
            turn.User.Busy = false;
        }
    }

    private static string Text(Random random, int words)
    {
        var text = new StringBuilder(words * 7);
        for (var i = 0; i < words; i++)
        {
            text.Append(i == 0 ? "" : " ").Append(Words[random.Next(Words.Length)]);
        }
        return text.ToString();
    }

    public sealed class User(int tenant)
    {
        public int Tenant { get; } = tenant;
        public List<(string Role, string Content)> History { get; } = [];
        public bool Busy { get; set; }
    }
}
