using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Gateway.Telemetry;

/// <summary>
/// The gateway's meter and activity source, both named "Gateway" (ServiceDefaults exports them).
/// Instruments follow the OpenTelemetry GenAI semantic conventions plus a request counter.
/// </summary>
public sealed class GatewayTelemetry : IDisposable
{
    public const string Name = "Gateway";

    private readonly Meter _meter;
    private readonly Histogram<long> _tokenUsage;
    private readonly Histogram<double> _timeToFirstToken;
    private readonly Histogram<double> _timePerOutputToken;
    private readonly Histogram<double> _requestDuration;
    private readonly Counter<long> _requests;
    private readonly Counter<long> _quotaFallbacks;
    private readonly Counter<long> _prefixBlocks;
    private readonly Counter<long> _prefixMatchedBlocks;
    private int _scoresObserved;

    public GatewayTelemetry(IMeterFactory meterFactory)
    {
        _meter = meterFactory.Create(Name);
        _tokenUsage = _meter.CreateHistogram<long>("gen_ai.client.token.usage", "{token}", "Number of input and output tokens used.",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536] });
        _timeToFirstToken = _meter.CreateHistogram<double>("gen_ai.server.time_to_first_token", "s", "Time to generate the first token.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0] });
        _timePerOutputToken = _meter.CreateHistogram<double>("gen_ai.server.time_per_output_token", "s", "Time per output token after the first.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5] });
        _requestDuration = _meter.CreateHistogram<double>("gen_ai.server.request.duration", "s", "Generative AI server request duration.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92] });
        _requests = _meter.CreateCounter<long>("gateway.requests", "{request}", "Requests by model, tenant and outcome.");
        _quotaFallbacks = _meter.CreateCounter<long>("gateway.quota.redis.fallbacks", "{operation}",
            "Quota operations that could not reach Redis: reservations checked against the replica's local quota instead, settlements dropped.");
        _prefixBlocks = _meter.CreateCounter<long>("gateway.routing.prefix.blocks", "{block}", "Reusable prompt blocks of routed requests (prefix affinity lookups).");
        _prefixMatchedBlocks = _meter.CreateCounter<long>("gateway.routing.prefix.matched_blocks", "{block}",
            "Of those, the leading blocks the chosen replica had recently been sent: matched / blocks is the prefix hit ratio.");
    }

    public ActivitySource ActivitySource { get; } = new(Name);

    /// <summary>
    /// One routed request's prefix lookup: its reusable prompt blocks and how many of them the chosen
    /// replica was recently sent; matched / blocks over time is the gateway's prefix hit ratio.
    /// </summary>
    internal void RecordPrefixLookup(string model, int blocks, int matched)
    {
        var tag = new KeyValuePair<string, object?>("triton.model", model);
        _prefixBlocks.Add(blocks, tag);
        _prefixMatchedBlocks.Add(matched, tag);
    }

    /// <summary>Publishes each replica's last routing score (<c>gateway.routing.replica.score</c>); once per process.</summary>
    internal bool ObserveReplicaScores(Routing.TritonReplicaSet replicas)
    {
        if (Interlocked.Exchange(ref _scoresObserved, 1) == 1)
        {
            return false;
        }
        _meter.CreateObservableGauge("gateway.routing.replica.score", () =>
        {
            var snapshot = replicas.Replicas;
            var measurements = new Measurement<double>[snapshot.Length];
            for (var i = 0; i < snapshot.Length; i++)
            {
                measurements[i] = new Measurement<double>(snapshot[i].LastScore, new KeyValuePair<string, object?>("replica", snapshot[i].Grpc.Authority));
            }
            return measurements;
        }, "{score}", "The combined routing score (load minus prefix credit; lower wins) each replica had when last picked.");
        return true;
    }

    public void RecordTokens(string operation, string model, long input, long output)
    {
        var tags = new TagList { { "gen_ai.operation.name", operation }, { "gen_ai.provider.name", "triton" }, { "gen_ai.request.model", model }, { "gen_ai.token.type", "input" } };
        _tokenUsage.Record(input, tags);
        tags[3] = new("gen_ai.token.type", "output");
        _tokenUsage.Record(output, tags);
    }

    public void RecordTimeToFirstToken(string operation, string model, TimeSpan elapsed) =>
        _timeToFirstToken.Record(elapsed.TotalSeconds, Tags(operation, model));

    public void RecordTimePerOutputToken(string operation, string model, TimeSpan perToken) =>
        _timePerOutputToken.Record(perToken.TotalSeconds, Tags(operation, model));

    public void RecordRequest(string operation, string model, string tenant, string outcome, TimeSpan duration, string? errorType)
    {
        var tags = Tags(operation, model);
        if (errorType is not null)
        {
            tags.Add("error.type", errorType);
        }
        _requestDuration.Record(duration.TotalSeconds, tags);
        _requests.Add(1, new TagList { { "gen_ai.request.model", model }, { "tenant", tenant }, { "outcome", outcome } });
    }

    /// <summary>A quota <paramref name="operation"/> (<c>reserve</c> or <c>settle</c>) that Redis did not answer.</summary>
    public void RecordQuotaFallback(string operation) => _quotaFallbacks.Add(1, new KeyValuePair<string, object?>("operation", operation));

    private static TagList Tags(string operation, string model) =>
        new() { { "gen_ai.operation.name", operation }, { "gen_ai.provider.name", "triton" }, { "gen_ai.request.model", model } };

    public void Dispose()
    {
        ActivitySource.Dispose();
        _meter.Dispose();
    }
}
