namespace Aspire.Hosting.Publishing.Kubernetes;

/// <summary>What a compute resource of the Aspire model becomes on Kubernetes, with every value resolved.</summary>
internal sealed record Workload(
    string Name,
    WorkloadKind Kind,
    string Image,
    IReadOnlyList<WorkloadPort> Ports,
    IReadOnlyList<KeyValuePair<string, string>> Environment,
    IReadOnlyList<string> SecretEnvironmentKeys,
    IReadOnlyList<string> Args,
    IReadOnlyList<WorkloadMount> Mounts,
    bool IsTriton,
    string? Entrypoint = null);

internal enum WorkloadKind
{
    /// <summary>A .NET project: hardened Deployment, probes on /health and /alive, PDB and HPA.</summary>
    Project,

    /// <summary>A container image, published as is.</summary>
    Container,
}

/// <summary>A named container port; the Service exposes it on the same number.</summary>
internal sealed record WorkloadPort(string Name, int Port, bool Http2);

/// <summary>A mount of the local model (a bind mount's target path).</summary>
internal sealed record WorkloadMount(string Target, bool ReadOnly);

/// <summary>The values of the publishing parameters, as resolved for one publish.</summary>
internal sealed record GkeSettings(
    string Namespace,
    string Accelerator,
    int GpuCount,
    string ModelBucket,
    string ImageRegistry,
    string ImageTag,
    string OtlpEndpoint,
    string GatewayClass)
{
    public const string PartOf = "llm-gateway";
}
