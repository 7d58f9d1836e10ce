using System.Diagnostics;
using System.Globalization;
using Gateway.Auth;
using Microsoft.Extensions.Hosting;
using Microsoft.AspNetCore.Builder;
using Gateway.Hosting;
using TritonEmulator.Hosting;

namespace Benchmarks.Hosting;

/// <summary>A started emulator or gateway: its addresses and its memory.</summary>
internal interface IComponent : IAsyncDisposable
{
    string Name { get; }
    Uri Rest { get; }
    Uri Grpc { get; }

    /// <summary>Resident set size now, bytes (/proc/&lt;pid&gt;/status VmRSS).</summary>
    long RssBytes();

    /// <summary>Peak resident set size, bytes (VmHWM).</summary>
    long PeakRssBytes();

    /// <summary>The component's own process, or null when it runs in the harness process (then it must not be signalled).</summary>
    int? ProcessId { get; }

    /// <summary>Completes when the component's process has exited (never for an in-process one).</summary>
    Task Exited { get; }

    /// <summary>
    /// The component's managed allocations so far (GC.GetTotalAllocatedBytes, precise) and its CPU
    /// time; for an in-process component, the harness process's.
    /// </summary>
    Task<ComponentStats> StatsAsync(CancellationToken cancellationToken);
}

/// <summary>Bytes allocated on the managed heap and CPU time used, both since the process started.</summary>
internal readonly record struct ComponentStats(long AllocatedBytes, TimeSpan Cpu)
{
    public static ComponentStats OfThisProcess()
    {
        using var process = Process.GetCurrentProcess();
        return new ComponentStats(GC.GetTotalAllocatedBytes(precise: true), process.TotalProcessorTime);
    }

    public static ComponentStats operator -(ComponentStats after, ComponentStats before) =>
        new(after.AllocatedBytes - before.AllocatedBytes, after.Cpu - before.Cpu);
}

/// <summary>
/// Starts the components. As processes (the default) each is this same executable run with
/// <c>--serve</c>, so RSS is per component and the load generator's own memory and GC stay out of
/// the gateway's numbers; the gateway runs with server GC, as its own runtimeconfig says.
/// In process (<c>--in-process</c>, CI smoke) all three share one process.
/// </summary>
internal static class ComponentHost
{
    public const string ApiKey = "sk-bench";

    public static Dictionary<string, string> EmulatorSettings(string repository) => new()
    {
        ["Emulator:HttpPort"] = "0",
        ["Emulator:GrpcPort"] = "0",
        ["Emulator:MetricsPort"] = "0",
        ["Emulator:ListenAddress"] = "127.0.0.1",
        ["Emulator:ModelRepository"] = repository,
        ["Logging:LogLevel:Default"] = "Warning",
    };

    /// <summary>The gateway in front of the emulated FasterTransformer models (<c>gpt-j-6b</c>, <c>gpt-j-6b-slow</c>).</summary>
    public static Dictionary<string, string> GatewaySettings(Uri triton)
    {
        var settings = BaseGatewaySettings(triton);
        foreach (var (id, tritonModel) in new[] { ("gpt-j-6b", ModelRepository.FastModel), ("gpt-j-6b-slow", ModelRepository.SlowModel) })
        {
            settings[$"Gateway:Models:{id}:TritonModel"] = tritonModel;
            settings[$"Gateway:Models:{id}:Contract"] = "fastertransformer";
            settings[$"Gateway:Models:{id}:Tokenizer"] = "gpt2";
            settings[$"Gateway:Models:{id}:ChatTemplate"] = "gpt-plain";
            settings[$"Gateway:Models:{id}:ContextWindow"] = "2048";
            settings[$"Gateway:Models:{id}:MaxOutputTokens"] = "1024";
            // An end id the synthetic corpus never produces: every stream runs to max_tokens.
            settings[$"Gateway:Models:{id}:EndId"] = "50255";
            settings[$"Gateway:Models:{id}:StartId"] = "50256";
        }
        return settings;
    }

    /// <summary>Ports, the Triton endpoint, timeouts, routing and the API key; the catalogue is the caller's.</summary>
    public static Dictionary<string, string> BaseGatewaySettings(Uri triton)
    {
        return new Dictionary<string, string>
        {
            ["Gateway:RestPort"] = "0",
            ["Gateway:GrpcPort"] = "0",
            ["Gateway:ListenOnLoopbackOnly"] = "true",
            ["Gateway:Triton:Endpoints:0"] = triton.ToString(),
            ["Gateway:Triton:FirstTokenTimeout"] = "00:01:00",
            ["Gateway:Triton:IdleTimeout"] = "00:01:00",
            // One emulator carries every benchmark stream (10,000 in the idle scenario): the
            // router's saturation shedding would turn the load test into a 503 test.
            ["Gateway:Routing:SaturationThreshold"] = "1000000",
            ["Gateway:ApiKeys:bench:Sha256"] = ApiKeyHash.ToHex(ApiKey),
            ["Gateway:ApiKeys:bench:Tenant"] = "bench",
            ["Gateway:ApiKeys:bench:AllowedModels:0"] = "*",
            ["Logging:LogLevel:Default"] = "Warning",
        };
    }

    /// <param name="assembly">Another build's Benchmarks.dll to run the component from (a process), or null for this build.</param>
    public static async Task<IComponent> StartAsync(string kind, Dictionary<string, string> settings, bool inProcess, CancellationToken cancellationToken, string? assembly = null)
    {
        var args = settings.Select(pair => $"--{pair.Key}={pair.Value}").ToArray();
        if (inProcess)
        {
            var app = kind == "gateway" ? GatewayApplication.Build(args) : EmulatorApplication.Build(args);
            await app.StartAsync(cancellationToken);
            var (rest, grpc) = Endpoints(kind, app);
            return new InProcessComponent(kind, app, rest, grpc);
        }
        return await ProcessComponent.StartAsync(kind, args, assembly, cancellationToken);
    }

    private static (Uri Http, Uri Grpc) Endpoints(string kind, WebApplication app)
    {
        if (kind == "gateway")
        {
            var endpoints = GatewayApplication.GetEndpoints(app);
            return (endpoints.Rest, endpoints.Grpc);
        }
        var emulator = TritonEmulator.Hosting.EmulatorApplication.GetEndpoints(app);
        return (emulator.Http, emulator.Grpc);
    }

    /// <summary>
    /// Child mode: serve until stdin closes (the harness ended) or SIGTERM. A <c>stats</c> line on
    /// stdin is answered with <c>STATS &lt;allocated bytes&gt; &lt;CPU ticks&gt;</c> on stdout.
    /// </summary>
    public static async Task<int> ServeAsync(string[] args)
    {
        var kind = args[0];
        var app = kind == "gateway" ? GatewayApplication.Build(args[1..]) : EmulatorApplication.Build(args[1..]);
        await app.StartAsync();
        var (rest, grpc) = Endpoints(kind, app);
        Console.WriteLine($"READY {rest} {grpc}");
        Console.Out.Flush();
        var stdinClosed = Task.Run(() =>
        {
            while (Console.In.ReadLine() is { } command)
            {
                if (command == "stats")
                {
                    var stats = ComponentStats.OfThisProcess();
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"STATS {stats.AllocatedBytes} {stats.Cpu.Ticks}"));
                    Console.Out.Flush();
                }
            }
        });
        await Task.WhenAny(stdinClosed, app.WaitForShutdownAsync());
        await app.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token);
        await app.DisposeAsync();
        return 0;
    }

    internal static long ReadStatus(int pid, string field)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return long.Parse(parts[1], CultureInfo.InvariantCulture) * 1024;
            }
        }
        return 0;
    }

    private sealed class InProcessComponent(string name, WebApplication app, Uri rest, Uri grpc) : IComponent
    {
        public string Name => name;
        public Uri Rest => rest;
        public Uri Grpc => grpc;
        public long RssBytes() => ReadStatus(Environment.ProcessId, "VmRSS:");
        public long PeakRssBytes() => ReadStatus(Environment.ProcessId, "VmHWM:");
        public int? ProcessId => null;
        public Task Exited => Task.Delay(Timeout.Infinite);
        public Task<ComponentStats> StatsAsync(CancellationToken cancellationToken) => Task.FromResult(ComponentStats.OfThisProcess());

        public async ValueTask DisposeAsync()
        {
            await app.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token);
            await app.DisposeAsync();
        }
    }

    private sealed class ProcessComponent(string name, Process process, Uri rest, Uri grpc) : IComponent
    {
        private readonly SemaphoreSlim _statsGate = new(1, 1);
        private TaskCompletionSource<ComponentStats>? _stats;

        public string Name => name;
        public Uri Rest => rest;
        public Uri Grpc => grpc;
        public long RssBytes() => ReadStatus(process.Id, "VmRSS:");
        public long PeakRssBytes() => ReadStatus(process.Id, "VmHWM:");
        public int? ProcessId => process.Id;
        public Task Exited { get; } = process.WaitForExitAsync();

        public async Task<ComponentStats> StatsAsync(CancellationToken cancellationToken)
        {
            await _statsGate.WaitAsync(cancellationToken);
            try
            {
                var answer = new TaskCompletionSource<ComponentStats>(TaskCreationOptions.RunContinuationsAsynchronously);
                Volatile.Write(ref _stats, answer);
                await process.StandardInput.WriteLineAsync("stats".AsMemory(), cancellationToken);
                await process.StandardInput.FlushAsync(cancellationToken);
                return await answer.Task.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken);
            }
            finally
            {
                _statsGate.Release();
            }
        }

        private void OnLine(string line)
        {
            if (line.StartsWith("STATS ", StringComparison.Ordinal) && Volatile.Read(ref _stats) is { } pending)
            {
                var parts = line.Split(' ');
                pending.TrySetResult(new ComponentStats(long.Parse(parts[1], CultureInfo.InvariantCulture),
                    TimeSpan.FromTicks(long.Parse(parts[2], CultureInfo.InvariantCulture))));
            }
        }

        public static async Task<IComponent> StartAsync(string kind, string[] args, string? assembly, CancellationToken cancellationToken)
        {
            var start = new ProcessStartInfo(assembly is null ? Environment.ProcessPath! : "dotnet")
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            if (assembly is not null)
            {
                start.ArgumentList.Add(assembly);
            }
            else if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet")
            {
                start.ArgumentList.Add(typeof(ComponentHost).Assembly.Location);
            }
            start.ArgumentList.Add("--serve");
            start.ArgumentList.Add(kind);
            foreach (var arg in args)
            {
                start.ArgumentList.Add(arg);
            }
            // The gateway's own runtimeconfig uses server GC (Web SDK default); keep that for honest memory numbers.
            start.Environment["DOTNET_gcServer"] = kind == "gateway" ? "1" : "0";
            var process = Process.Start(start)!;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(60));
            while (true)
            {
                var line = await process.StandardOutput.ReadLineAsync(timeout.Token)
                    ?? throw new InvalidOperationException($"{kind} exited before it was ready (exit code {(process.HasExited ? process.ExitCode : -1)})");
                if (line.StartsWith("READY ", StringComparison.Ordinal))
                {
                    var parts = line.Split(' ');
                    var component = new ProcessComponent(kind, process, new Uri(parts[1]), new Uri(parts[2]));
                    // Keep draining stdout so the child never blocks on a full pipe; answers to 'stats' come this way.
                    _ = Task.Run(async () =>
                    {
                        while (await process.StandardOutput.ReadLineAsync() is { } next)
                        {
                            component.OnLine(next);
                        }
                    });
                    return component;
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            try
            {
                process.StandardInput.Close();
            }
            catch (IOException)
            {
                // already gone (a fault scenario killed it): nothing to tell it
            }
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try
            {
                await process.WaitForExitAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
            }
            process.Dispose();
        }
    }
}
