using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using Benchmarks.Hosting;
using Benchmarks.Report;

namespace Benchmarks.Peers;

/// <summary>
/// The gateway side by side with its peers in one run on one machine, every backend zero-cost:
/// the gateway in front of the emulator (zero-latency FasterTransformer model), Portkey's gateway
/// and nginx (the pure-proxy floor) in front of a static OpenAI server. Closed loop at
/// <see cref="Connections"/> connections, non-streaming then 32-token streams; CPU per request is
/// the proxy's whole process tree (from /proc), allocations are the gateway's own managed heap.
/// </summary>
internal static class PeersScenario
{
    public const string Name = "peers";
    public const string PortkeyVersion = "1.15.2";
    private const int Connections = 10;
    private const int UnaryTokens = 16;

    private sealed record Peer(string Name, Uri Address, string Model, Func<TimeSpan> Cpu, IComponent? Gateway, Action<HttpRequestMessage> Headers)
    {
        /// <summary>The emulator behind <see cref="Gateway"/>, whose CPU is the backend column.</summary>
        public IComponent? Backend { get; init; }
    }

    private sealed class Totals
    {
        public long Ok;
        public long Errors;
        public TimeSpan Cpu;
        public TimeSpan Backend;
        public long? Allocated;
        public List<double> Latencies { get; } = [];
    }

    private sealed record Row(string Target, string Mode, long Requests, long Errors, double Rate, double P50, double P99, double CpuMicros, double? AllocatedBytes, double? BackendCpuMicros);

    public static async Task<string> RunAsync(BenchmarkOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        var duration = options.Smoke ? TimeSpan.FromSeconds(1) : options.Duration;
        await using var upstream = await StaticOpenAiServer.StartAsync(cancellationToken);
        using var repository = ModelRepository.Create(options.IdleStep, 1024);
        await using var emulator = await ComponentHost.StartAsync("emulator", ComponentHost.EmulatorSettings(repository.Path), options.InProcess, cancellationToken);
        await using var gateway = await ComponentHost.StartAsync("gateway", ComponentHost.GatewaySettings(emulator.Grpc), options.InProcess, cancellationToken);
        await using var baseline = options.PeersBaseline is { } assembly
            ? await ComponentHost.StartAsync("gateway", ComponentHost.GatewaySettings(emulator.Grpc), inProcess: false, cancellationToken, assembly)
            : null;
        // The emulator of another build behind a second gateway of this build: the emulator's before/after, interleaved.
        await using var emulatorBefore = options.PeersEmulatorBaseline is { } emulatorAssembly
            ? await ComponentHost.StartAsync("emulator", ComponentHost.EmulatorSettings(repository.Path), inProcess: false, cancellationToken, emulatorAssembly)
            : null;
        await using var onEmulatorBefore = emulatorBefore is not null
            ? await ComponentHost.StartAsync("gateway", ComponentHost.GatewaySettings(emulatorBefore.Grpc), options.InProcess, cancellationToken)
            : null;
        await using var nginx = await PeerProcess.StartNginxAsync(upstream.Address, cancellationToken);
        await using var portkey = options.Smoke ? null : await PeerProcess.StartPortkeyAsync(PortkeyVersion, log, cancellationToken);

        var peers = new List<Peer>
        {
            new("gateway → emulator", gateway.Rest, "gpt-j-6b", () => Cpu(gateway), gateway, Bearer) { Backend = emulator },
        };
        if (onEmulatorBefore is not null)
        {
            peers.Add(new($"gateway → emulator before ({Path.GetFileName(Path.GetDirectoryName(options.PeersEmulatorBaseline))})", onEmulatorBefore.Rest, "gpt-j-6b",
                () => Cpu(onEmulatorBefore), onEmulatorBefore, Bearer) { Backend = emulatorBefore });
        }
        if (baseline is not null)
        {
            peers.Add(new($"gateway before ({Path.GetFileName(Path.GetDirectoryName(options.PeersBaseline))}) → emulator", baseline.Rest, "gpt-j-6b", () => Cpu(baseline), baseline, Bearer) { Backend = emulator });
        }
        if (portkey is not null)
        {
            peers.Add(new($"Portkey {PortkeyVersion} → static", portkey.Address, "gpt-j-6b", portkey.Cpu, null, request =>
            {
                Bearer(request);
                request.Headers.Add("x-portkey-provider", "openai");
                request.Headers.Add("x-portkey-custom-host", new Uri(upstream.Address, "/v1").ToString());
            }));
        }
        if (nginx is not null)
        {
            peers.Add(new("nginx → static", nginx.Address, "gpt-j-6b", nginx.Cpu, null, Bearer));
        }
        log.WriteLine($"peers: {string.Join(", ", peers.Select(p => p.Name))}; {Machine.Describe()}");

        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = Connections, UseProxy = false, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5) })
        {
            Timeout = TimeSpan.FromSeconds(30),
        };
        // Interleaved rounds (A B C, A B C) so a load change on the machine hits every peer alike.
        var rounds = options.Smoke ? 1 : 2;
        var totals = new Dictionary<(Peer, bool), Totals>();
        foreach (var peer in peers)
        {
            foreach (var stream in new[] { false, true })
            {
                await PhaseAsync(http, peer, stream, TimeSpan.FromSeconds(options.Smoke ? 0.5 : 2), cancellationToken); // warm-up
                totals[(peer, stream)] = new Totals();
            }
        }
        for (var round = 0; round < rounds; round++)
        {
            foreach (var stream in new[] { false, true })
            {
                foreach (var peer in peers)
                {
                    var total = totals[(peer, stream)];
                    var cpuBefore = peer.Cpu();
                    var backendBefore = peer.Backend is null ? TimeSpan.Zero : Cpu(peer.Backend);
                    var allocatedBefore = await AllocatedAsync(peer.Gateway, cancellationToken);
                    var (ok, errors, latencies) = await PhaseAsync(http, peer, stream, duration, cancellationToken);
                    total.Cpu += peer.Cpu() - cpuBefore;
                    total.Backend += peer.Backend is null ? TimeSpan.Zero : Cpu(peer.Backend) - backendBefore;
                    var allocatedAfter = await AllocatedAsync(peer.Gateway, cancellationToken);
                    total.Allocated = allocatedBefore is { } b && allocatedAfter is { } a ? (total.Allocated ?? 0) + (a - b) : null;
                    total.Ok += ok;
                    total.Errors += errors;
                    total.Latencies.AddRange(latencies);
                    log.WriteLine($"round {round + 1}: {peer.Name}, {(stream ? "stream" : "unary")}: {ok} ok, {errors} errors");
                }
            }
        }
        var rows = new List<Row>();
        foreach (var peer in peers)
        {
            foreach (var stream in new[] { false, true })
            {
                var t = totals[(peer, stream)];
                t.Latencies.Sort();
                var seconds = duration.TotalSeconds * rounds;
                rows.Add(new Row(peer.Name, stream ? $"stream {StaticOpenAiServer.StreamTokens} tokens" : $"unary {UnaryTokens} tokens",
                    t.Ok, t.Errors, t.Ok / seconds, Percentile(t.Latencies, 0.50), Percentile(t.Latencies, 0.99),
                    t.Ok == 0 ? double.NaN : t.Cpu.TotalMicroseconds / t.Ok,
                    t.Allocated is { } allocated && t.Ok > 0 ? allocated / (double)t.Ok : null,
                    peer.Backend is not null && t.Ok > 0 ? t.Backend.TotalMicroseconds / t.Ok : null));
            }
        }
        return Markdown(rows, duration);
    }

    private static void Bearer(HttpRequestMessage request) => request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", ComponentHost.ApiKey);

    private static TimeSpan Cpu(IComponent component) => component.ProcessId is { } pid ? PeerProcess.ProcessTreeCpu(pid) : ComponentStats.OfThisProcess().Cpu;

    private static async Task<long?> AllocatedAsync(IComponent? gateway, CancellationToken cancellationToken)
    {
        if (gateway is null)
        {
            return null;
        }
        try
        {
            return (await gateway.StatsAsync(cancellationToken)).AllocatedBytes;
        }
        catch (TimeoutException)
        {
            return null; // an older build that does not answer 'stats'
        }
    }

    /// <summary><see cref="Connections"/> closed-loop workers for <paramref name="duration"/>: latency (unary) or TTFT (streams) in ms.</summary>
    private static async Task<(long Ok, long Errors, List<double> Latencies)> PhaseAsync(HttpClient http, Peer peer, bool stream, TimeSpan duration, CancellationToken cancellationToken)
    {
        var body = stream
            ? $$"""{"model":"{{peer.Model}}","messages":[{"role":"user","content":"Tell me about foxes."}],"max_tokens":{{StaticOpenAiServer.StreamTokens}},"stream":true}"""
            : $$"""{"model":"{{peer.Model}}","messages":[{"role":"user","content":"Tell me about foxes."}],"max_tokens":{{UnaryTokens}}}""";
        var bytes = Encoding.UTF8.GetBytes(body);
        long ok = 0, errors = 0;
        var latencies = new List<double>[Connections];
        var end = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        await Task.WhenAll(Enumerable.Range(0, Connections).Select(async worker =>
        {
            var mine = latencies[worker] = [];
            while (Stopwatch.GetTimestamp() < end && !cancellationToken.IsCancellationRequested)
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(peer.Address, "/v1/chat/completions"))
                    {
                        Content = new ByteArrayContent(bytes) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } },
                    };
                    peer.Headers(request);
                    using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
                    if (!response.IsSuccessStatusCode)
                    {
                        Interlocked.Increment(ref errors);
                        await response.Content.CopyToAsync(Stream.Null, cancellationToken);
                        await Task.Delay(50, cancellationToken);
                        continue;
                    }
                    if (!stream)
                    {
                        await response.Content.CopyToAsync(Stream.Null, cancellationToken);
                        mine.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                        Interlocked.Increment(ref ok);
                        continue;
                    }
                    using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
                    double? ttft = null;
                    var done = false;
                    while (await reader.ReadLineAsync(cancellationToken) is { } line)
                    {
                        if (line.StartsWith("data: [DONE]", StringComparison.Ordinal))
                        {
                            done = true;
                            break;
                        }
                        if (ttft is null && line.Contains("\"content\":\"", StringComparison.Ordinal))
                        {
                            ttft = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                        }
                    }
                    if (done && ttft is { } first)
                    {
                        mine.Add(first);
                        Interlocked.Increment(ref ok);
                    }
                    else
                    {
                        Interlocked.Increment(ref errors);
                    }
                }
                catch (Exception ex) when (ex is HttpRequestException or IOException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
                {
                    Interlocked.Increment(ref errors);
                    await Task.Delay(50, cancellationToken);
                }
            }
        }));
        return (ok, errors, latencies.SelectMany(static l => l).ToList());
    }

    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];

    private static string F(double value, string format = "0") => double.IsNaN(value) ? "—" : value.ToString(format, CultureInfo.InvariantCulture);

    private static string Format(Row r) =>
        $"| {r.Target} | {r.Mode} | {r.Requests} | {r.Errors} | {F(r.Rate)} | {F(r.P50, "0.00")} | {F(r.P99, "0.00")} | {F(r.CpuMicros)} | {(r.AllocatedBytes is { } a ? F(a) : "—")} | {(r.BackendCpuMicros is { } b ? F(b) : "—")} |";

    private static string Markdown(List<Row> rows, TimeSpan duration)
    {
        var text = new StringBuilder();
        text.AppendLine("## Side by side with the peers (zero-cost backends, one run, one machine)");
        text.AppendLine();
        text.Append(CultureInfo.InvariantCulture, $"`dotnet run -c Release --project Benchmarks -- --scenarios peers` ({Machine.Describe()}; {Connections} connections, closed loop, two interleaved rounds of {duration.TotalSeconds:0} s per peer and mode after a 2 s warm-up). ");
        text.AppendLine("CPU is the proxy's whole process tree (user + system, /proc, 10 ms ticks) divided by the requests it completed; "
            + "allocations are the gateway process's managed heap (GC.GetTotalAllocatedBytes, gRPC client, Kestrel and logging included); "
            + "backend CPU is the emulator's process during the gateway's phase. p50/p99 are the whole request (unary) or the time to the first content chunk (streams).");
        text.AppendLine();
        text.AppendLine("| Target | Mode | Requests | Errors | req/s | p50 ms | p99 ms | CPU µs/request | alloc B/request | backend CPU µs/request |");
        text.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var row in rows)
        {
            text.AppendLine(Format(row));
        }
        text.AppendLine();
        Row? Find(string prefix, bool stream) => rows.FirstOrDefault(r => r.Target.StartsWith(prefix, StringComparison.Ordinal) && r.Mode.StartsWith(stream ? "stream" : "unary", StringComparison.Ordinal));
        var gatewayUnary = Find("gateway →", false);
        var gatewayStream = Find("gateway →", true);
        var nginxStream = Find("nginx", true);
        var portkeyUnary = Find("Portkey", false);
        var beforeUnary = Find("gateway before", false);
        var beforeStream = Find("gateway before", true);
        text.AppendLine("| Ratio | Value |");
        text.AppendLine("|---|---|");
        if (gatewayStream is not null && nginxStream is not null)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| gateway CPU per stream ÷ nginx's | {gatewayStream.CpuMicros / nginxStream.CpuMicros:0.00}× |");
        }
        if (gatewayUnary is not null && portkeyUnary is not null)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| gateway req/s ÷ Portkey's (unary) | {gatewayUnary.Rate / portkeyUnary.Rate:0.00}× |");
        }
        if (gatewayUnary is not null && beforeUnary is not null)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| gateway CPU per request ÷ before (unary) | {gatewayUnary.CpuMicros / beforeUnary.CpuMicros:0.00}× |");
        }
        if (gatewayStream is not null && beforeStream is not null)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| gateway CPU per stream ÷ before | {gatewayStream.CpuMicros / beforeStream.CpuMicros:0.00}× |");
        }
        foreach (var stream in new[] { false, true })
        {
            if (Find("gateway → emulator", stream) is { BackendCpuMicros: { } after } && Find("gateway → emulator before", stream) is { BackendCpuMicros: { } before })
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"| emulator CPU per {(stream ? "stream" : "request (unary)")} ÷ before | {after / before:0.00}× |");
            }
        }
        if (gatewayUnary?.AllocatedBytes is { } unaryBytes && gatewayStream?.AllocatedBytes is { } streamBytes)
        {
            var perToken = (streamBytes - unaryBytes) / (StaticOpenAiServer.StreamTokens - UnaryTokens);
            text.AppendLine(CultureInfo.InvariantCulture, $"| gateway allocations per token ((B/stream − B/unary) ÷ {StaticOpenAiServer.StreamTokens - UnaryTokens} tokens) | {perToken:0} B |");
        }
        return text.ToString();
    }
}
