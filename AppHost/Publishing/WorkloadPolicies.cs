namespace Aspire.Hosting.Publishing.Kubernetes;

/// <summary>
/// The per-resource choices the Aspire model cannot express, keyed by resource name. Everything
/// else is derived from the model, so a new project resource gets the hardened default.
/// </summary>
internal static class WorkloadPolicies
{
    /// <summary>Project resources reachable from the internet through the GKE Gateway, with the path they own.</summary>
    public static readonly IReadOnlyDictionary<string, PublicRoute> PublicRoutes = new Dictionary<string, PublicRoute>(StringComparer.Ordinal)
    {
        // The OpenAI-compatible REST + SSE face; gRPC (h2c) stays inside the cluster.
        ["gateway"] = new("http", "/v1", SessionAffinity: false),
        // Blazor Server: a circuit lives in one pod, so the load balancer keeps a client on it.
        ["web"] = new("http", "/", SessionAffinity: true),
    };

    /// <summary>
    /// Resources that read API keys from their Secret even though no Aspire parameter carries
    /// them (the gateway's <c>Gateway:ApiKeys</c> section), with the example lines written to
    /// <c>.env.secret.example</c>.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> SecretExamples = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal)
    {
        ["gateway"] =
        [
            "# One key per tenant: only the SHA-256 of the key is stored (see docs/deploy-gke.md).",
            "Gateway__ApiKeys__team_a__Sha256=",
            "Gateway__ApiKeys__team_a__Tenant=team-a",
            "Gateway__ApiKeys__team_a__AllowedModels__0=*",
            "Gateway__ApiKeys__team_a__RequestsPerMinute=600",
            "Gateway__ApiKeys__team_a__TokensPerMinute=200000",
            "# The web chat's own key (the SHA-256 of web/.env.secret's GatewayClient__ApiKey).",
            "Gateway__ApiKeys__web__Sha256=",
            "Gateway__ApiKeys__web__Tenant=web",
            "Gateway__ApiKeys__web__AllowedModels__0=*",
            "# The admin API's key (/admin/v1): only its SHA-256.",
            "Gateway__Admin__ApiKeySha256=",
            "# Keys and the usage ledger: Cloud SQL for PostgreSQL through its private IP (docs/deploy-gke.md),",
            "# as an Npgsql connection string: Host=<private IP>;Database=ledger;Username=gateway;SSL Mode=Require and the password.",
            "ConnectionStrings__ledger=",
        ],
    };

    /// <summary>
    /// Settings a resource gets only in the cluster, keyed by resource name. The gateway's drain
    /// (Gateway/Lifecycle) must end inside the pod's grace period: the preStop sleep runs first,
    /// then SIGTERM starts the drain, whose deadline plus the final write plus the host's stop
    /// margin (5 s) stay under <see cref="TerminationGracePeriodSeconds"/>.
    /// </summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlyList<KeyValuePair<string, string>>> ClusterEnvironment =
        new Dictionary<string, IReadOnlyList<KeyValuePair<string, string>>>(StringComparer.Ordinal)
        {
            ["gateway"] =
            [
                new("Gateway__Shutdown__AcceptWindow", TimeSpan.FromSeconds(GatewayAcceptWindowSeconds).ToString()),
                new("Gateway__Shutdown__DrainTimeout", TimeSpan.FromSeconds(GatewayDrainTimeoutSeconds).ToString()),
                new("Gateway__Shutdown__FinalWriteTimeout", TimeSpan.FromSeconds(GatewayFinalWriteSeconds).ToString()),
            ],
        };

    /// <summary>New requests still served after SIGTERM (GCLB's NEG may lag the preStop sleep).</summary>
    public const int GatewayAcceptWindowSeconds = 5;

    /// <summary>From SIGTERM: open streams may run this long before they end with <c>server_shutting_down</c>.</summary>
    public const int GatewayDrainTimeoutSeconds = 95;

    /// <summary>After the drain deadline: time for the cut streams to write their error and <c>[DONE]</c>.</summary>
    public const int GatewayFinalWriteSeconds = 2;

    /// <summary>Longest stream a pod finishes after it is told to stop; the LB drains for as long.</summary>
    public const int TerminationGracePeriodSeconds = 120;

    /// <summary>Time for the load balancer and the NEG to stop sending new requests before SIGTERM.</summary>
    public const int PreStopSleepSeconds = 10;

    /// <summary>GCPBackendPolicy timeout: the longest SSE stream or WebSocket circuit the LB lets run.</summary>
    public const int BackendTimeoutSeconds = 3600;

    /// <summary>The .NET images' non-root <c>app</c> user (APP_UID).</summary>
    public const long DotnetAppUid = 1654;

    /// <summary>The Triton images' non-root <c>triton-server</c> user.</summary>
    public const long TritonUid = 1000;

    /// <summary>The gateway's settings for replica discovery through Triton's headless Service (Gateway/README.md).</summary>
    public const string TritonHeadlessServiceKey = "Gateway__Triton__HeadlessService";

    /// <inheritdoc cref="TritonHeadlessServiceKey"/>
    public const string TritonHeadlessMetricsPortKey = "Gateway__Triton__HeadlessMetricsPort";

    /// <summary>Triton scales on its queue: requests received but not yet executing, per pod.</summary>
    public const string TritonQueueMetric = "prometheus.googleapis.com|nv_inference_pending_request_count|gauge";
}

internal sealed record PublicRoute(string EndpointName, string PathPrefix, bool SessionAffinity);
