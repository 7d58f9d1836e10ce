using System.Diagnostics;
using Benchmarks.Hosting;
using Benchmarks.Llama;
using Benchmarks.Load;
using Benchmarks.Report;

namespace Benchmarks;

/// <summary>Starts emulator and gateway, runs the chosen scenarios against both, writes the report.</summary>
internal static class BenchmarkRunner
{
    public static async Task<BenchmarkReport> RunAsync(BenchmarkOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        var loadBefore = Machine.LoadAverage();
        var started = Stopwatch.GetTimestamp();
        var report = new BenchmarkReport();
        var fasterTransformer = options.Scenarios.Where(static s => s is not BenchmarkOptions.LlamaScenario and not BenchmarkOptions.FaultsScenario
            and not BenchmarkOptions.PeersScenario and not BenchmarkOptions.PrefixScenario and not BenchmarkOptions.LedgerScenario
            and not BenchmarkOptions.GrammarScenario).ToList();
        if (fasterTransformer.Count > 0)
        {
            await RunFasterTransformerAsync(options, fasterTransformer, report, log, cancellationToken);
        }
        if (options.Scenarios.Contains(BenchmarkOptions.LlamaScenario))
        {
            log.WriteLine($"{TimeProvider.System.GetUtcNow():HH:mm:ss} scenario {BenchmarkOptions.LlamaScenario} ...");
            await LlamaShapeBenchmark.RunAsync(options, report, log, cancellationToken); // logs each row itself
        }

        var faults = await RunMarkedAsync(BenchmarkOptions.FaultsScenario, Faults.FaultScenario.RunAsync, options, log, cancellationToken);
        var peers = await RunMarkedAsync(BenchmarkOptions.PeersScenario, Peers.PeersScenario.RunAsync, options, log, cancellationToken);
        var prefix = await RunMarkedAsync(BenchmarkOptions.PrefixScenario, Prefix.PrefixScenario.RunAsync, options, log, cancellationToken);
        var ledger = await RunMarkedAsync(BenchmarkOptions.LedgerScenario, Ledger.LedgerScenario.RunAsync, options, log, cancellationToken);
        var grammar = await RunMarkedAsync(BenchmarkOptions.GrammarScenario, GrammarBenchmark.RunAsync, options, log, cancellationToken);
        var output = options.Output ?? Path.Combine(Path.GetDirectoryName(ModelRepository.FindModels())!, "BENCHMARKS.md");
        var existing = File.Exists(output) ? await File.ReadAllTextAsync(output, cancellationToken) : "";
        var sections = new[]
        {
            (MarkedSection.Faults, faults), (MarkedSection.Peers, peers), (MarkedSection.Prefix, prefix), (MarkedSection.Ledger, ledger), (MarkedSection.Grammar, grammar),
        };
        if (sections.Count(static s => s.Item2 is not null) == options.Scenarios.Count)
        {
            // A run of only marked-section scenarios updates their own sections and leaves the rest of the report as it was.
            var updated = existing;
            foreach (var (section, body) in sections)
            {
                if (body is not null)
                {
                    updated = section.Put(updated, body);
                    log.WriteLine(body);
                }
            }
            await File.WriteAllTextAsync(output, updated, cancellationToken);
            log.WriteLine($"wrote the {string.Join(" and ", options.Scenarios)} section of {output}");
            return report;
        }

        var markdown = report.ToMarkdown(options, loadBefore, Machine.LoadAverage(), Stopwatch.GetElapsedTime(started));
        // A marked section survives a run that does not measure it (each is measured on its own).
        foreach (var (section, body) in sections)
        {
            if ((body ?? section.Get(existing)) is { } kept)
            {
                markdown = section.Put(markdown, kept);
            }
        }
        if (NotesFile(options) is { } notes)
        {
            // Analysis is written by hand in its own file, so a rerun regenerates the numbers without losing it.
            markdown += $"\n## Analysis (hand-written, from {Path.GetRelativePath(Path.GetDirectoryName(ModelRepository.FindModels())!, notes)}; it may describe an earlier run)\n\n"
                + (await File.ReadAllTextAsync(notes, cancellationToken)).Trim() + "\n";
        }
        log.WriteLine(markdown);
        await File.WriteAllTextAsync(output, markdown, cancellationToken);
        log.WriteLine($"wrote {output}");
        return report;
    }

    /// <summary>Runs a scenario that writes its own marked section of the report, when it was asked for; its markdown, or null.</summary>
    private static async Task<string?> RunMarkedAsync(string scenario, Func<BenchmarkOptions, TextWriter, CancellationToken, Task<string>> run,
        BenchmarkOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        if (!options.Scenarios.Contains(scenario))
        {
            return null;
        }
        log.WriteLine($"{TimeProvider.System.GetUtcNow():HH:mm:ss} scenario {scenario} ...");
        return await run(options, log, cancellationToken);
    }

    /// <summary>The scenarios on the emulated FasterTransformer models (zero-latency and slow), direct and through the gateway.</summary>
    private static async Task RunFasterTransformerAsync(BenchmarkOptions options, IReadOnlyList<string> scenarios, BenchmarkReport report, TextWriter log, CancellationToken cancellationToken)
    {
        using var repository = ModelRepository.Create(options.IdleStep, Math.Max(options.IdleStreams, options.Concurrency));
        await using var emulator = await ComponentHost.StartAsync("emulator", ComponentHost.EmulatorSettings(repository.Path), options.InProcess, cancellationToken);
        await using var gateway = await ComponentHost.StartAsync("gateway", ComponentHost.GatewaySettings(emulator.Grpc), options.InProcess, cancellationToken);
        using var http = LoadClient.CreateHttpClient();
        using var direct = new DirectGrpcClient(emulator.Grpc);
        var client = new LoadClient(http, gateway.Rest, direct, ComponentHost.ApiKey);
        log.WriteLine($"emulator {emulator.Rest} gateway {gateway.Rest}; {Machine.Describe()}");

        // Warm-up: JIT, tokenizer, connection pools on both paths.
        await StreamsAsync(client, Target.Gateway, "gpt-j-6b", Math.Min(options.Concurrency, 50), options.MaxTokens, TimeSpan.FromSeconds(1), TimeSpan.Zero, gateway, cancellationToken);
        await StreamsAsync(client, Target.Direct, "gpt-j-6b", Math.Min(options.Concurrency, 50), options.MaxTokens, TimeSpan.FromSeconds(1), TimeSpan.Zero, emulator, cancellationToken);

        foreach (var scenario in scenarios)
        {
            log.WriteLine($"{TimeProvider.System.GetUtcNow():HH:mm:ss} scenario {scenario} ...");
            switch (scenario)
            {
                case "rates":
                    foreach (var rate in options.Rates)
                    {
                        foreach (var target in new[] { Target.Direct, Target.Gateway })
                        {
                            report.Rows.Add(await RateAsync(client, target, rate, options.Duration, target == Target.Gateway ? gateway : emulator, cancellationToken));
                        }
                    }
                    break;
                case "streams":
                    foreach (var target in new[] { Target.Direct, Target.Gateway })
                    {
                        var row = await StreamsAsync(client, target, "gpt-j-6b", options.Concurrency, options.MaxTokens, options.Duration,
                            TimeSpan.FromSeconds(options.Smoke ? 0.5 : 3), target == Target.Gateway ? gateway : emulator, cancellationToken);
                        report.Rows.Add(row with { Scenario = $"{options.Concurrency} streams" });
                    }
                    break;
                case "idle":
                    report.Rows.Add(await IdleAsync(client, options, gateway, cancellationToken));
                    break;
                case "soak":
                    var soak = await StreamsAsync(client, Target.Gateway, "gpt-j-6b", options.SoakConcurrency, options.MaxTokens, options.Soak, TimeSpan.Zero, gateway, cancellationToken);
                    report.Rows.Add(soak with { Scenario = $"soak {options.Soak.TotalSeconds:0} s × {options.SoakConcurrency}" });
                    break;
            }
            log.WriteLine($"{TimeProvider.System.GetUtcNow():HH:mm:ss} {report.Rows[^1]}");
        }
    }

    private static string? NotesFile(BenchmarkOptions options)
    {
        if (options.Notes is "none" || options.Smoke && options.Notes is null)
        {
            return null;
        }
        var path = options.Notes ?? Path.Combine(Path.GetDirectoryName(ModelRepository.FindModels())!, "Benchmarks", "NOTES.md");
        return File.Exists(path) ? Path.GetFullPath(path) : null;
    }

    /// <summary>Non-streaming completions (16 tokens) sent at a fixed rate (open loop) for <paramref name="duration"/>.</summary>
    private static async Task<ResultRow> RateAsync(LoadClient client, Target target, int rate, TimeSpan duration, IComponent server, CancellationToken cancellationToken)
    {
        const int tokens = 16;
        var latencies = new List<double>();
        var errors = 0L;
        var total = (int)(rate * duration.TotalSeconds);
        var tasks = new List<Task>(total);
        var start = Stopwatch.GetTimestamp();
        var tickInterval = Stopwatch.Frequency / (double)rate;
        var completedTokens = 0L;
        for (var i = 0; i < total; i++)
        {
            var due = start + (long)(i * tickInterval);
            var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
            if (wait > TimeSpan.FromMilliseconds(1))
            {
                await Task.Delay(wait, cancellationToken);
            }
            tasks.Add(Task.Run(async () =>
            {
                var result = await client.CompleteAsync(target, tokens, cancellationToken);
                lock (latencies)
                {
                    if (result.Ok)
                    {
                        latencies.Add(result.TtftMs);
                        completedTokens += result.Tokens;
                    }
                    else
                    {
                        errors++;
                    }
                }
            }, cancellationToken));
        }
        await Task.WhenAll(tasks);
        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        return new ResultRow($"completions @ {rate}/s", Name(target), total, errors, total / elapsed, Percentiles.Of(latencies), default,
            completedTokens / elapsed, server.PeakRssBytes() / 1048576.0, null);
    }

    /// <summary>
    /// <paramref name="concurrency"/> workers, each streaming completions back to back for
    /// warm-up + <paramref name="duration"/>; only streams started after the warm-up count.
    /// </summary>
    private static async Task<ResultRow> StreamsAsync(LoadClient client, Target target, string model, int concurrency, int maxTokens,
        TimeSpan duration, TimeSpan warmUp, IComponent server, CancellationToken cancellationToken)
    {
        var samples = new StreamSamples();
        var baseline = server.RssBytes();
        var measureFrom = Stopwatch.GetTimestamp() + (long)(warmUp.TotalSeconds * Stopwatch.Frequency);
        var end = measureFrom + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        long peakRss = 0;
        using var sampling = new CancellationTokenSource();
        var sampler = SampleAsync(server, rss => peakRss = Math.Max(peakRss, rss), sampling.Token);
        var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            var local = new List<double>(maxTokens);
            while (Stopwatch.GetTimestamp() < end)
            {
                local.Clear();
                var startedAt = Stopwatch.GetTimestamp();
                var result = await client.StreamAsync(target, model, maxTokens, local, null, cancellationToken);
                if (startedAt < measureFrom)
                {
                    continue;
                }
                samples.Record(result, local);
            }
        }, cancellationToken)).ToArray();
        await Task.WhenAll(workers);
        var elapsed = Stopwatch.GetElapsedTime(measureFrom).TotalSeconds;
        await sampling.CancelAsync();
        await sampler;
        var kbPerStream = (peakRss - baseline) / 1024.0 / concurrency;
        return new ResultRow("streams", Name(target), samples.Requests, samples.Errors, samples.Requests / elapsed, Percentiles.Of(samples.Ttfts), Percentiles.Of(samples.InterTokens),
            samples.Tokens / elapsed, server.PeakRssBytes() / 1048576.0, target == Target.Gateway ? Math.Max(0, kbPerStream) : null);
    }

    /// <summary>
    /// Opens <see cref="BenchmarkOptions.IdleStreams"/> slow streams through the gateway (one token
    /// per idle step), ramped by a bounded number of concurrent connects, and measures the
    /// gateway's RSS while they are all open. Each stream lives <see cref="BenchmarkOptions.IdleTokens"/>
    /// steps, long enough that the first ones are still open when the last one gets its first
    /// token (a stream counts as open from its first token until it ends).
    /// </summary>
    private static async Task<ResultRow> IdleAsync(LoadClient client, BenchmarkOptions options, IComponent gateway, CancellationToken cancellationToken)
    {
        var n = options.IdleStreams;
        var samples = new StreamSamples();
        GC.Collect();
        var baseline = gateway.RssBytes();
        var open = 0;
        var maxOpen = 0;
        long rssAtMaxOpen = 0;
        var allOpen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var connecting = new SemaphoreSlim(Math.Min(n, 1000));
        var start = Stopwatch.GetTimestamp();
        using var sampling = new CancellationTokenSource();
        var sampler = SampleAsync(gateway, rss =>
        {
            var now = Volatile.Read(ref open);
            if (now >= maxOpen)
            {
                maxOpen = now;
                rssAtMaxOpen = Math.Max(rssAtMaxOpen, rss);
            }
        }, sampling.Token);
        var streams = Enumerable.Range(0, n).Select(_ => Task.Run(async () =>
        {
            await connecting.WaitAsync(cancellationToken);
            var released = false;
            var local = new List<double>(options.IdleTokens);
            var result = await client.StreamAsync(Target.Gateway, "gpt-j-6b-slow", options.IdleTokens, local, () =>
            {
                connecting.Release();
                released = true;
                if (Interlocked.Increment(ref open) == n)
                {
                    allOpen.TrySetResult();
                }
            }, cancellationToken);
            if (!released)
            {
                connecting.Release();
            }
            else
            {
                Interlocked.Decrement(ref open);
            }
            samples.Record(result, local);
        }, cancellationToken)).ToArray();
        await Task.WhenAll(streams);
        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        await sampling.CancelAsync();
        await sampler;
        var kbPerStream = maxOpen == 0 ? 0 : (rssAtMaxOpen - baseline) / 1024.0 / maxOpen;
        return new ResultRow($"{n} idle streams (max {maxOpen} open)", "gateway", n, samples.Errors, n / elapsed, Percentiles.Of(samples.Ttfts), Percentiles.Of(samples.InterTokens),
            samples.Tokens / elapsed, gateway.PeakRssBytes() / 1048576.0, Math.Max(0, kbPerStream));
    }

    private static async Task SampleAsync(IComponent server, Action<long> sample, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                sample(server.RssBytes());
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static string Name(Target target) => target == Target.Gateway ? "gateway" : "direct";
}

/// <summary>What the streams of one scenario measured; <see cref="Record"/> is safe from many workers.</summary>
internal sealed class StreamSamples
{
    private readonly Lock _gate = new();

    public List<double> Ttfts { get; } = [];

    public List<double> InterTokens { get; } = [];

    public long Requests { get; private set; }

    public long Errors { get; private set; }

    public long Tokens { get; private set; }

    public void Record(RequestResult result, List<double> interTokens)
    {
        lock (_gate)
        {
            Requests++;
            if (result.Ok)
            {
                Ttfts.Add(result.TtftMs);
                InterTokens.AddRange(interTokens);
                Tokens += result.Tokens;
            }
            else
            {
                Errors++;
            }
        }
    }
}
