using System.Text.Json;
using System.Text.Json.Nodes;
using k8s.Models;

namespace Aspire.Hosting.Publishing.Kubernetes;

/// <summary>
/// The operations folder of the publish output, <c>monitoring/</c>: Google Managed Prometheus alert
/// <c>Rules</c> (applied with the rest by kustomize) and a Cloud Monitoring dashboard
/// (<c>dashboard.json</c>, for <c>gcloud monitoring dashboards create --config-from-file</c>).
/// Both are PromQL over what the cluster collects: DCGM (GKE's managed GPU metrics), Triton's
/// <c>/metrics</c> (PodMonitoring), and the gateway's OpenTelemetry metrics in their Prometheus names
/// (<c>gen_ai.server.time_to_first_token</c> → <c>gen_ai_server_time_to_first_token_seconds</c>,
/// counters with <c>_total</c>).
/// </summary>
internal static class MonitoringManifests
{
    public const string Folder = "monitoring";

    /// <summary>One chart: a title and its PromQL queries (one line each).</summary>
    public sealed record Chart(string Title, string Unit, params string[] Queries);

    public static readonly IReadOnlyList<Chart> Charts =
    [
        new("GPU utilisation (DCGM)", "%", "avg by (node) (DCGM_FI_DEV_GPU_UTIL)"),
        new("GPU memory used (DCGM)", "MiB", "sum by (node) (DCGM_FI_DEV_FB_USED)"),
        new("Triton queue (pending requests per pod)", "1", "sum by (pod) (nv_inference_pending_request_count)"),
        new("KV cache usage (TensorRT-LLM, vLLM)", "1",
            "max by (pod) (nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"fraction\"})",
            "max by (pod) (vllm:gpu_cache_usage_perc)"),
        new("Gateway time to first token p50 / p95 / p99", "s",
            "histogram_quantile(0.5, sum by (le) (rate(gen_ai_server_time_to_first_token_seconds_bucket[5m])))",
            "histogram_quantile(0.95, sum by (le) (rate(gen_ai_server_time_to_first_token_seconds_bucket[5m])))",
            "histogram_quantile(0.99, sum by (le) (rate(gen_ai_server_time_to_first_token_seconds_bucket[5m])))"),
        new("Gateway request duration p50 / p99", "s",
            "histogram_quantile(0.5, sum by (le) (rate(gen_ai_server_request_duration_seconds_bucket[5m])))",
            "histogram_quantile(0.99, sum by (le) (rate(gen_ai_server_request_duration_seconds_bucket[5m])))"),
        new("Gateway requests by outcome", "1/s", "sum by (outcome) (rate(gateway_requests_total[5m]))"),
        new("Gateway error rate", "1", ErrorRatio),
        new("Budget refusals by tenant", "1/s", "sum by (tenant) (rate(gateway_budget_refusals_total[5m]))"),
        new("Usage ledger rows", "1/s", "sum by (outcome) (rate(gateway_ledger_rows_total[5m]))"),
    ];

    /// <summary>Failed requests (not cancelled by their client, not refused by a limit) over all.</summary>
    private const string ErrorRatio =
        "sum(rate(gateway_requests_total{outcome!~\"success|cancelled|rate_limited|budget_exceeded|invalid_request|unauthenticated|permission_denied|model_not_found\"}[5m])) / clamp_min(sum(rate(gateway_requests_total[5m])), 1e-9)";

    public static readonly IReadOnlyList<AlertRule> Alerts =
    [
        Alert("GatewayErrorRateHigh", $"{ErrorRatio} > 0.05", "10m", "critical",
            "More than 5% of gateway requests fail (backend errors, timeouts, shutdowns)."),
        Alert("GatewayTimeToFirstTokenP99High",
            "histogram_quantile(0.99, sum by (le) (rate(gen_ai_server_time_to_first_token_seconds_bucket[5m]))) > 2", "10m", "warning",
            "p99 time to first token above 2 s: Triton is queueing; check the queue and scale-out."),
        Alert("TritonQueueBacklog", "avg(nv_inference_pending_request_count) > 50", "5m", "warning",
            "Triton pods hold more than 50 pending requests on average: the HPA is at its limit or GPUs are missing."),
        Alert("GpuSaturated", "avg(DCGM_FI_DEV_GPU_UTIL) > 95", "15m", "warning",
            "GPUs are above 95% busy for 15 minutes: add GPU nodes or raise the HPA's maximum."),
        Alert("KvCacheNearlyFull",
            "max(nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=\"fraction\"}) > 0.9 or max(vllm:gpu_cache_usage_perc) > 0.9", "10m", "warning",
            "The KV cache is over 90% full: requests wait for blocks or are preempted."),
        Alert("BudgetRefusals", "sum by (tenant) (rate(gateway_budget_refusals_total[15m])) > 0", "15m", "info",
            "A tenant's keys are refused for a spent monthly token budget."),
        Alert("UsageLedgerSpilling", "sum(rate(gateway_ledger_rows_total{outcome=\"spilled\"}[5m])) > 0", "5m", "warning",
            "Usage rows spill to the gateway's local file: the ledger database does not answer."),
        Alert("UsageLedgerRowsLost", "sum(increase(gateway_ledger_rows_total{outcome=\"lost\"}[15m])) > 0", "0m", "critical",
            "Usage rows could be neither written nor spilled: billing is missing requests."),
    ];

    public static IEnumerable<GeneratedFile> Generate(GkeSettings settings, Func<string, object[], GeneratedFile> yaml)
    {
        var rules = new PrometheusRules
        {
            Metadata = new V1ObjectMeta
            {
                Name = "llm-gateway-alerts",
                NamespaceProperty = settings.Namespace,
                Labels = new Dictionary<string, string> { ["app.kubernetes.io/name"] = Folder, ["app.kubernetes.io/part-of"] = GkeSettings.PartOf, ["app.kubernetes.io/managed-by"] = "aspire-gke-publisher" },
            },
            Spec = new RulesSpec { Groups = [new RuleGroup { Name = "llm-gateway", Interval = "30s", Rules = [.. Alerts] }] },
        };
        yield return yaml($"{Folder}/rules.yaml", [rules]);
        yield return yaml($"{Folder}/kustomization.yaml", [new Kustomization { Resources = ["rules.yaml"] }]);
        yield return new GeneratedFile($"{Folder}/dashboard.json", Dashboard(settings));
    }

    /// <summary>A Cloud Monitoring dashboard (mosaic layout, two charts a row, PromQL data sets).</summary>
    private static string Dashboard(GkeSettings settings)
    {
        var tiles = new JsonArray();
        for (var i = 0; i < Charts.Count; i++)
        {
            var chart = Charts[i];
            var dataSets = new JsonArray();
            foreach (var query in chart.Queries)
            {
                dataSets.Add(new JsonObject
                {
                    ["timeSeriesQuery"] = new JsonObject { ["prometheusQuery"] = query, ["unitOverride"] = chart.Unit },
                    ["plotType"] = "LINE",
                    ["targetAxis"] = "Y1",
                });
            }
            tiles.Add(new JsonObject
            {
                ["xPos"] = i % 2 * 24,
                ["yPos"] = i / 2 * 16,
                ["width"] = 24,
                ["height"] = 16,
                ["widget"] = new JsonObject
                {
                    ["title"] = chart.Title,
                    ["xyChart"] = new JsonObject { ["dataSets"] = dataSets, ["yAxis"] = new JsonObject { ["scale"] = "LINEAR" } },
                },
            });
        }
        var dashboard = new JsonObject
        {
            ["displayName"] = $"LLM gateway ({settings.Namespace})",
            ["mosaicLayout"] = new JsonObject { ["columns"] = 48, ["tiles"] = tiles },
            ["labels"] = new JsonObject { ["llm-gateway"] = "" },
        };
        return dashboard.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    private static AlertRule Alert(string name, string expr, string duration, string severity, string summary) => new()
    {
        Alert = name,
        Expr = expr,
        For = duration,
        Labels = new Dictionary<string, string> { ["severity"] = severity },
        Annotations = new Dictionary<string, string> { ["summary"] = summary },
    };
}
