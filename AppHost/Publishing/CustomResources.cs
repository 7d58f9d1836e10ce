using System.Text.Json.Serialization;
using k8s;
using k8s.Models;

namespace Aspire.Hosting.Publishing.Kubernetes;

// Typed models for the custom resources the GKE manifests use. Only the fields we emit are
// declared; strict YAML loading (unknown field = error) in the tests keeps them honest.

/// <summary>Base for namespaced custom resources: apiVersion, kind, metadata, spec.</summary>
internal abstract class CustomResource<TSpec> : IKubernetesObject<V1ObjectMeta>, ISpec<TSpec>
{
    protected CustomResource(string apiVersion, string kind)
    {
        ApiVersion = apiVersion;
        Kind = kind;
    }

    [JsonPropertyName("apiVersion")]
    public string ApiVersion { get; set; }

    [JsonPropertyName("kind")]
    public string Kind { get; set; }

    [JsonPropertyName("metadata")]
    public V1ObjectMeta Metadata { get; set; } = new();

    [JsonPropertyName("spec")]
    public TSpec Spec { get; set; } = default!;
}

// ---- Gateway API (gateway.networking.k8s.io/v1) ----

internal sealed class GatewayApiGateway() : CustomResource<GatewaySpec>(ApiVersionV1, "Gateway")
{
    public const string ApiVersionV1 = "gateway.networking.k8s.io/v1";
}

internal sealed class GatewaySpec
{
    [JsonPropertyName("gatewayClassName")] public string GatewayClassName { get; set; } = "";
    [JsonPropertyName("listeners")] public List<GatewayListener> Listeners { get; set; } = [];
}

internal sealed class GatewayListener
{
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("protocol")] public string Protocol { get; set; } = "";
    [JsonPropertyName("port")] public int Port { get; set; }
    [JsonPropertyName("allowedRoutes")] public GatewayAllowedRoutes? AllowedRoutes { get; set; }
}

internal sealed class GatewayAllowedRoutes
{
    [JsonPropertyName("namespaces")] public GatewayRouteNamespaces? Namespaces { get; set; }
    [JsonPropertyName("kinds")] public List<GatewayRouteGroupKind>? Kinds { get; set; }
}

internal sealed class GatewayRouteNamespaces
{
    [JsonPropertyName("from")] public string From { get; set; } = "Same";
}

internal sealed class GatewayRouteGroupKind
{
    [JsonPropertyName("kind")] public string Kind { get; set; } = "";
}

internal sealed class HttpRoute() : CustomResource<HttpRouteSpec>(GatewayApiGateway.ApiVersionV1, "HTTPRoute");

internal sealed class HttpRouteSpec
{
    [JsonPropertyName("parentRefs")] public List<HttpRouteParentRef> ParentRefs { get; set; } = [];
    [JsonPropertyName("rules")] public List<HttpRouteRule> Rules { get; set; } = [];
}

internal sealed class HttpRouteParentRef
{
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("sectionName")] public string? SectionName { get; set; }
}

internal sealed class HttpRouteRule
{
    [JsonPropertyName("matches")] public List<HttpRouteMatch> Matches { get; set; } = [];
    [JsonPropertyName("backendRefs")] public List<HttpRouteBackendRef> BackendRefs { get; set; } = [];
}

internal sealed class HttpRouteMatch
{
    [JsonPropertyName("path")] public HttpPathMatch Path { get; set; } = new();
}

internal sealed class HttpPathMatch
{
    [JsonPropertyName("type")] public string Type { get; set; } = "PathPrefix";
    [JsonPropertyName("value")] public string Value { get; set; } = "/";
}

internal sealed class HttpRouteBackendRef
{
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("port")] public int Port { get; set; }
}

// ---- GKE policies (networking.gke.io/v1) ----

internal sealed class PolicyTargetRef
{
    [JsonPropertyName("group")] public string Group { get; set; } = "";
    [JsonPropertyName("kind")] public string Kind { get; set; } = "Service";
    [JsonPropertyName("name")] public string Name { get; set; } = "";
}

internal sealed class HealthCheckPolicy() : CustomResource<HealthCheckPolicySpec>(ApiVersionV1, "HealthCheckPolicy")
{
    public const string ApiVersionV1 = "networking.gke.io/v1";
}

internal sealed class HealthCheckPolicySpec
{
    [JsonPropertyName("default")] public HealthCheckPolicyDefault Default { get; set; } = new();
    [JsonPropertyName("targetRef")] public PolicyTargetRef TargetRef { get; set; } = new();
}

internal sealed class HealthCheckPolicyDefault
{
    [JsonPropertyName("checkIntervalSec")] public int CheckIntervalSec { get; set; }
    [JsonPropertyName("timeoutSec")] public int TimeoutSec { get; set; }
    [JsonPropertyName("healthyThreshold")] public int HealthyThreshold { get; set; }
    [JsonPropertyName("unhealthyThreshold")] public int UnhealthyThreshold { get; set; }
    [JsonPropertyName("config")] public HealthCheckConfig Config { get; set; } = new();
}

internal sealed class HealthCheckConfig
{
    [JsonPropertyName("type")] public string Type { get; set; } = "HTTP";
    [JsonPropertyName("httpHealthCheck")] public HttpHealthCheck HttpHealthCheck { get; set; } = new();
}

internal sealed class HttpHealthCheck
{
    /// <summary>Left out: the load balancer then probes the serving port.</summary>
    [JsonPropertyName("port")] public int? Port { get; set; }
    [JsonPropertyName("requestPath")] public string RequestPath { get; set; } = "/";
}

internal sealed class GcpBackendPolicy() : CustomResource<GcpBackendPolicySpec>(HealthCheckPolicy.ApiVersionV1, "GCPBackendPolicy");

internal sealed class GcpBackendPolicySpec
{
    [JsonPropertyName("default")] public GcpBackendPolicyDefault Default { get; set; } = new();
    [JsonPropertyName("targetRef")] public PolicyTargetRef TargetRef { get; set; } = new();
}

internal sealed class GcpBackendPolicyDefault
{
    /// <summary>Backend service timeout: for HTTP the whole response (an SSE stream) must end within it.</summary>
    [JsonPropertyName("timeoutSec")] public int TimeoutSec { get; set; }
    [JsonPropertyName("connectionDraining")] public GcpConnectionDraining? ConnectionDraining { get; set; }
    [JsonPropertyName("sessionAffinity")] public GcpSessionAffinity? SessionAffinity { get; set; }
}

internal sealed class GcpConnectionDraining
{
    [JsonPropertyName("drainingTimeoutSec")] public int DrainingTimeoutSec { get; set; }
}

internal sealed class GcpSessionAffinity
{
    [JsonPropertyName("type")] public string Type { get; set; } = "GENERATED_COOKIE";
    [JsonPropertyName("cookieTtlSec")] public int? CookieTtlSec { get; set; }
}

// ---- Google Managed Prometheus (monitoring.googleapis.com/v1) ----

internal sealed class PodMonitoring() : CustomResource<PodMonitoringSpec>(ApiVersionV1, "PodMonitoring")
{
    public const string ApiVersionV1 = "monitoring.googleapis.com/v1";
}

internal sealed class PodMonitoringSpec
{
    [JsonPropertyName("selector")] public V1LabelSelector Selector { get; set; } = new();
    [JsonPropertyName("endpoints")] public List<PodMonitoringEndpoint> Endpoints { get; set; } = [];
}

internal sealed class PodMonitoringEndpoint
{
    [JsonPropertyName("port")] public string Port { get; set; } = "";
    [JsonPropertyName("path")] public string Path { get; set; } = "/metrics";
    [JsonPropertyName("interval")] public string Interval { get; set; } = "30s";
}

// ---- Kustomize (kustomize.config.k8s.io/v1beta1) ----

internal sealed class Kustomization
{
    [JsonPropertyName("apiVersion")] public string ApiVersion { get; set; } = "kustomize.config.k8s.io/v1beta1";
    [JsonPropertyName("kind")] public string Kind { get; set; } = "Kustomization";
    [JsonPropertyName("namespace")] public string? Namespace { get; set; }
    [JsonPropertyName("resources")] public List<string> Resources { get; set; } = [];
    [JsonPropertyName("configMapGenerator")] public List<KustomizeGenerator>? ConfigMapGenerator { get; set; }
    [JsonPropertyName("secretGenerator")] public List<KustomizeGenerator>? SecretGenerator { get; set; }
}

internal sealed class KustomizeGenerator
{
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("literals")] public List<string>? Literals { get; set; }
    [JsonPropertyName("envs")] public List<string>? Envs { get; set; }
}

// ---- Google Managed Prometheus alerting (monitoring.googleapis.com/v1 Rules) ----

internal sealed class PrometheusRules() : CustomResource<RulesSpec>(PodMonitoring.ApiVersionV1, "Rules");

internal sealed class RulesSpec
{
    [JsonPropertyName("groups")] public List<RuleGroup> Groups { get; set; } = [];
}

internal sealed class RuleGroup
{
    [JsonPropertyName("name")] public string Name { get; set; } = "";
    [JsonPropertyName("interval")] public string Interval { get; set; } = "30s";
    [JsonPropertyName("rules")] public List<AlertRule> Rules { get; set; } = [];
}

internal sealed class AlertRule
{
    [JsonPropertyName("alert")] public string Alert { get; set; } = "";
    [JsonPropertyName("expr")] public string Expr { get; set; } = "";
    [JsonPropertyName("for")] public string For { get; set; } = "5m";
    [JsonPropertyName("labels")] public Dictionary<string, string> Labels { get; set; } = [];
    [JsonPropertyName("annotations")] public Dictionary<string, string> Annotations { get; set; } = [];
}
