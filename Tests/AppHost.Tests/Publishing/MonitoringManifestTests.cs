using System.Text.Json;
using Aspire.Hosting.Publishing.Kubernetes;

namespace AppHost.Tests.Publishing;

/// <summary>The operations output: Managed Prometheus alert Rules and a Cloud Monitoring dashboard, over metrics that exist.</summary>
public sealed class MonitoringManifestTests(GkePublishFixture publish) : IClassFixture<GkePublishFixture>
{
    /// <summary>Every metric a query may use: DCGM, Triton's own, the gateway's (OpenTelemetry names in Prometheus form).</summary>
    private static readonly string[] KnownMetrics =
    [
        "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED",
        "nv_inference_pending_request_count", "nv_trt_llm_kv_cache_block_metrics", "vllm:gpu_cache_usage_perc",
        "gen_ai_server_time_to_first_token_seconds_bucket", "gen_ai_server_request_duration_seconds_bucket",
        "gateway_requests_total", "gateway_budget_refusals_total", "gateway_ledger_rows_total",
    ];

    private static readonly string[] PromQlWords =
    [
        "sum", "avg", "max", "by", "rate", "increase", "histogram_quantile", "clamp_min", "or", "le", "node", "pod", "outcome", "tenant",
        "kv_cache_block_type", "fraction", "spilled", "lost", "success", "cancelled", "rate_limited", "budget_exceeded", "invalid_request",
        "unauthenticated", "permission_denied", "model_not_found", "e", "m",
    ];

    /// <summary>Parentheses and braces balance, quotes close, and every identifier is a known metric, label, function or value.</summary>
    private static void AssertPromQl(string query)
    {
        var depth = 0;
        var quoted = false;
        foreach (var c in query)
        {
            if (c == '"')
            {
                quoted = !quoted;
            }
            else if (!quoted && c is '(' or '{' or '[')
            {
                depth++;
            }
            else if (!quoted && c is ')' or '}' or ']')
            {
                depth--;
                Assert.True(depth >= 0, query);
            }
        }
        Assert.Equal(0, depth);
        Assert.False(quoted, query);
        var identifiers = System.Text.RegularExpressions.Regex.Matches(query, "[A-Za-z_][A-Za-z0-9_:]*").Select(m => m.Value);
        foreach (var identifier in identifiers)
        {
            Assert.True(KnownMetrics.Contains(identifier) || PromQlWords.Contains(identifier), $"unknown identifier '{identifier}' in {query}");
        }
        Assert.Contains(KnownMetrics, m => query.Contains(m, StringComparison.Ordinal));
    }

    [Fact]
    public void AlertRules_AreManagedPrometheusRules_AppliedByKustomize_OverKnownMetrics()
    {
        var rules = Assert.Single(publish.All<PrometheusRules>());
        Assert.Equal("monitoring.googleapis.com/v1", rules.ApiVersion);
        Assert.Contains("monitoring", GkePublish.LoadKustomization(publish.Output).Resources);
        Assert.Contains("rules.yaml", GkePublish.LoadKustomization(Path.Combine(publish.Output, "monitoring")).Resources);
        var alerts = rules.Spec.Groups.SelectMany(g => g.Rules).ToList();
        Assert.Equal(alerts.Count, alerts.Select(a => a.Alert).Distinct().Count());
        foreach (var alert in alerts)
        {
            AssertPromQl(alert.Expr);
            Assert.Contains(alert.Labels["severity"], new[] { "critical", "warning", "info" });
            Assert.False(string.IsNullOrWhiteSpace(alert.Annotations["summary"]));
        }
        // What the issue asks to be watched: GPU (DCGM), Triton queue and KV, TTFT, errors, budget refusals.
        foreach (var metric in new[] { "DCGM_FI_DEV_GPU_UTIL", "nv_inference_pending_request_count", "vllm:gpu_cache_usage_perc",
                     "gen_ai_server_time_to_first_token_seconds_bucket", "gateway_requests_total", "gateway_budget_refusals_total" })
        {
            Assert.Contains(alerts, a => a.Expr.Contains(metric, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Dashboard_IsACloudMonitoringMosaic_WithPromQlChartsForGpuTritonLatencyErrorsAndBudgets()
    {
        using var dashboard = JsonDocument.Parse(File.ReadAllText(Path.Combine(publish.Output, "monitoring", "dashboard.json")));
        var root = dashboard.RootElement;
        Assert.False(string.IsNullOrWhiteSpace(root.GetProperty("displayName").GetString()));
        var layout = root.GetProperty("mosaicLayout");
        var columns = layout.GetProperty("columns").GetInt32();
        var queries = new List<string>();
        foreach (var tile in layout.GetProperty("tiles").EnumerateArray())
        {
            Assert.True(tile.GetProperty("xPos").GetInt32() + tile.GetProperty("width").GetInt32() <= columns);
            var chart = tile.GetProperty("widget").GetProperty("xyChart");
            foreach (var dataSet in chart.GetProperty("dataSets").EnumerateArray())
            {
                var query = dataSet.GetProperty("timeSeriesQuery").GetProperty("prometheusQuery").GetString()!;
                AssertPromQl(query);
                queries.Add(query);
            }
        }
        foreach (var metric in new[] { "DCGM_FI_DEV_GPU_UTIL", "nv_inference_pending_request_count", "nv_trt_llm_kv_cache_block_metrics",
                     "gen_ai_server_time_to_first_token_seconds_bucket", "gen_ai_server_request_duration_seconds_bucket",
                     "gateway_requests_total", "gateway_budget_refusals_total" })
        {
            Assert.Contains(queries, q => q.Contains(metric, StringComparison.Ordinal));
        }
        Assert.Contains(queries, q => q.StartsWith("histogram_quantile(0.99", StringComparison.Ordinal));
    }
}
