using System.Buffers;
using Gateway.Models;
using Gateway.Triton;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Triton.Inference;

namespace Gateway.Routing;

/// <summary>
/// Every <see cref="RoutingOptions.ProbeInterval"/>: re-resolves the headless Service when one is
/// configured (every <see cref="TritonOptions.DiscoveryInterval"/>), probes each replica with
/// ServerReady and ModelReady for every catalogued Triton model (on the replica's shared channel;
/// a model not ready there only takes the replica out of that model's routing),
/// and scrapes its metrics port. Two failed probes in a row eject a replica; an ejected one comes
/// back on the first good probe after <see cref="RoutingOptions.MinEjection"/>. All timing comes
/// from the injected <see cref="TimeProvider"/>.
/// </summary>
internal sealed partial class ReplicaMonitor : BackgroundService
{
    internal const int ProbeFailuresToEject = 2;

    private readonly TritonReplicaSet _replicas;
    private readonly TritonRouter _router;
    private readonly IModelCatalog _catalog;
    private readonly TritonOptions _triton;
    private readonly RoutingOptions _options;
    private readonly HostResolver _resolver;
    private readonly TimeProvider _time;
    private readonly ILogger<ReplicaMonitor> _logger;
    private readonly HttpClient _http;
    private readonly Dictionary<TritonReplica, int> _probeFailures = [];
    private long? _lastDiscovery;

    public ReplicaMonitor(TritonReplicaSet replicas, TritonRouter router, IModelCatalog catalog,
        IOptions<TritonOptions> triton, IOptions<RoutingOptions> options, HostResolver resolver, TimeProvider time, ILogger<ReplicaMonitor> logger)
    {
        _replicas = replicas;
        _router = router;
        _catalog = catalog;
        _triton = triton.Value;
        _options = options.Value;
        _resolver = resolver;
        _time = time;
        _logger = logger;
        // Scrapes need no resilience pipeline: the next tick is the retry.
        _http = new HttpClient(new SocketsHttpHandler { ConnectTimeout = _options.ProbeTimeout, PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1) })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    /// <summary>The first round runs before the gateway serves: replicas are discovered and probed (bounded by ProbeTimeout).</summary>
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await RefreshAsync(cancellationToken).ConfigureAwait(false);
        await base.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.ProbeInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                await RefreshAsync(stoppingToken).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>One round: discovery (when due), then every replica's probe and scrape in parallel.</summary>
    public async Task RefreshAsync(CancellationToken cancellationToken)
    {
        if (_triton.ParsedHeadlessService is { } headless
            && (_lastDiscovery is not { } last || _time.GetElapsedTime(last) >= _triton.DiscoveryInterval))
        {
            _lastDiscovery = _time.GetTimestamp();
            await DiscoverAsync(headless.Host, headless.Port, cancellationToken).ConfigureAwait(false);
        }
        var replicas = _replicas.Replicas;
        var probes = new Task[replicas.Length];
        for (var i = 0; i < replicas.Length; i++)
        {
            probes[i] = ProbeAsync(replicas[i], cancellationToken);
        }
        await Task.WhenAll(probes).ConfigureAwait(false);
        lock (_probeFailures)
        {
            foreach (var replica in _probeFailures.Keys.Where(r => r.IsRemoved).ToList())
            {
                _probeFailures.Remove(replica);
            }
        }
        _router.Drain();
    }

    private async Task DiscoverAsync(string host, int port, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = new CancellationTokenSource(_options.ProbeTimeout, _time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
            var addresses = await _resolver(host, linked.Token).ConfigureAwait(false);
            if (addresses.Length == 0)
            {
                // A headless Service with no ready pod: keep the last known replicas (their probes decide).
                return;
            }
            if (_replicas.Update(TritonReplicaSet.FromAddresses(addresses, port, _triton.HeadlessMetricsPort)))
            {
                LogDiscovered(_logger, host, _replicas.Replicas.Length);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            LogDiscoveryFailed(_logger, host, ex.Message);
        }
    }

    private async Task ProbeAsync(TritonReplica replica, CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(_options.ProbeTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        var health = CheckHealthAsync(replica, linked.Token);
        var scrape = replica.Metrics is { } metrics ? ScrapeAsync(replica, metrics, linked.Token) : Task.CompletedTask;
        var (failure, unreadyModels) = await health.ConfigureAwait(false);
        await scrape.ConfigureAwait(false);
        if (cancellationToken.IsCancellationRequested || replica.IsRemoved)
        {
            return; // a replica that left discovery meanwhile is neither ejected nor readmitted
        }
        int failures;
        lock (_probeFailures)
        {
            failures = failure is null ? 0 : _probeFailures.GetValueOrDefault(replica) + 1;
            _probeFailures[replica] = failures;
        }
        if (failure is null)
        {
            if (replica.SetUnreadyModels(unreadyModels))
            {
                LogModelsNotReady(_logger, replica.Grpc, unreadyModels.Length, string.Join(", ", unreadyModels.Select(m => m.Version.Length == 0 ? m.Model : m.Model + ":" + m.Version)));
            }
            if (replica.ProbeSucceeded(_time, _options.MinEjection))
            {
                LogReadmitted(_logger, replica.Grpc);
            }
        }
        else if (failures >= ProbeFailuresToEject && replica.Eject(_time.GetTimestamp(), failure))
        {
            LogEjected(_logger, replica.Grpc, failure);
        }
    }

    /// <summary>
    /// Failure null when the server is ready (else why not), with the catalogued models that are not
    /// ready or not in its repository: those are routed elsewhere, the replica still serves the others.
    /// </summary>
    private async Task<(string? Failure, (string Model, string Version)[] UnreadyModels)> CheckHealthAsync(TritonReplica replica, CancellationToken cancellationToken)
    {
        try
        {
            if (!_replicas.TryGetChannel(replica, out var channel))
            {
                return ("left discovery", []);
            }
            var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
            var options = new CallOptions(cancellationToken: cancellationToken);
            var server = await client.ServerReadyAsync(new ServerReadyRequest(), options).ConfigureAwait(false);
            if (!server.Ready)
            {
                return ("ServerReady is false", []);
            }
            List<(string, string)>? unready = null;
            foreach (var model in _catalog.Models)
            {
                var (name, version) = (model.Options.TritonModel, model.Options.TritonModelVersion);
                if (unready is not null && unready.Contains((name, version)))
                {
                    continue; // two public ids over one Triton model
                }
                bool ready;
                try
                {
                    ready = (await client.ModelReadyAsync(new ModelReadyRequest { Name = name, Version = version }, options).ConfigureAwait(false)).Ready;
                }
                catch (RpcException ex) when (!cancellationToken.IsCancellationRequested
                    && ex.StatusCode is not (StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Cancelled))
                {
                    ready = false; // Triton answers NotFound / InvalidArgument for a model or version it does not have
                }
                if (!ready)
                {
                    (unready ??= []).Add((name, version));
                }
            }
            return (null, unready is null ? [] : [.. unready]);
        }
        catch (RpcException ex)
        {
            return (cancellationToken.IsCancellationRequested ? "probe timed out" : $"probe failed: {ex.StatusCode} {ex.Status.Detail}", []);
        }
        catch (Exception ex) when (ex is OperationCanceledException or HttpRequestException or IOException or InvalidOperationException)
        {
            return ("probe failed: " + ex.Message, []);
        }
    }

    private async Task ScrapeAsync(TritonReplica replica, Uri metrics, CancellationToken cancellationToken)
    {
        byte[]? buffer = null;
        try
        {
            using var response = await _http.GetAsync(new Uri(metrics, "/metrics"), HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
            response.EnsureSuccessStatusCode();
            var limit = _options.MaxMetricsBytes;
            if (response.Content.Headers.ContentLength > limit)
            {
                LogMetricsTooLarge(_logger, metrics, limit);
                return; // the previous load stays until it is older than MetricsMaxAge
            }
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            buffer = ArrayPool<byte>.Shared.Rent(Math.Min(64 * 1024, limit + 1));
            var length = 0;
            while (true)
            {
                if (length > limit)
                {
                    // Disposing the response aborts the rest of the body: never an unbounded read.
                    LogMetricsTooLarge(_logger, metrics, limit);
                    return;
                }
                if (length == buffer.Length)
                {
                    var larger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, limit + 1));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
                var read = await stream.ReadAsync(buffer.AsMemory(length), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }
                length += read;
            }
            replica.Record(TritonMetricsParser.Parse(buffer.AsSpan(0, length)), _time.GetTimestamp());
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
        {
            // The load goes stale and stops counting after MetricsMaxAge; health is the probe's business.
            LogScrapeFailed(_logger, metrics, ex.Message);
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    public override void Dispose()
    {
        _http.Dispose();
        base.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Triton headless service {Host}: {Count} replicas")]
    private static partial void LogDiscovered(ILogger logger, string host, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Triton headless service {Host} could not be resolved: {Reason}")]
    private static partial void LogDiscoveryFailed(ILogger logger, string host, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Triton replica {Endpoint} ejected: {Reason}")]
    private static partial void LogEjected(ILogger logger, Uri endpoint, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Triton replica {Endpoint}: {Count} models not ready, routed elsewhere: {Models}")]
    private static partial void LogModelsNotReady(ILogger logger, Uri endpoint, int count, string models);

    [LoggerMessage(Level = LogLevel.Information, Message = "Triton replica {Endpoint} is ready again")]
    private static partial void LogReadmitted(ILogger logger, Uri endpoint);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Metrics of {Endpoint} exceed {Limit} bytes (Gateway:Routing:MaxMetricsBytes); scrape abandoned, the previous load is kept until stale")]
    private static partial void LogMetricsTooLarge(ILogger logger, Uri endpoint, int limit);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Scraping {Endpoint} failed: {Reason}")]
    private static partial void LogScrapeFailed(ILogger logger, Uri endpoint, string reason);
}
