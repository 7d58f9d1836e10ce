using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;

namespace Aspire.Hosting;

/// <summary>
/// Several Triton replicas for load-aware routing. Locally <c>Triton:Replicas</c> (default 2)
/// resources run side by side: <c>triton</c> on 8000/8001/8002, <c>triton-1</c> on 8010/8011/8012,
/// <c>triton-2</c> on 8020/… The gateway sees replica <c>i</c> as index <c>i</c> of the one
/// service name <c>triton</c> (<c>services__triton__grpc__i</c> with <c>services__triton__metrics__i</c>),
/// so service discovery lists every replica. In publish mode there is one <c>triton</c> Deployment,
/// scaled by its HPA; the publisher points the gateway at its headless Service instead.
/// </summary>
internal static class TritonReplicaExtensions
{
    public const string ReplicasKey = "Triton:Replicas";
    public const int DefaultReplicas = 2;
    private const int PortStride = 10;

    public static IReadOnlyList<IResourceBuilder<IResourceWithEndpoints>> AddTritonReplicas(this IDistributedApplicationBuilder builder, string name)
    {
        var count = builder.ExecutionContext.IsPublishMode ? 1 : builder.Configuration.GetValue(ReplicasKey, DefaultReplicas);
        if (count is < 1 or > 9)
        {
            throw new InvalidOperationException($"{ReplicasKey} must be 1..9 (was {count}).");
        }
        var replicas = new List<IResourceBuilder<IResourceWithEndpoints>>(count);
        for (var i = 0; i < count; i++)
        {
            replicas.Add(builder.AddTriton(i == 0 ? name : $"{name}-{i}", i * PortStride));
        }
        return replicas;
    }

    /// <summary>Replicas after the first (which <c>AddGateway</c> references) under the first one's service name, index by index.</summary>
    public static IResourceBuilder<ProjectResource> WithTritonReplicas(this IResourceBuilder<ProjectResource> gateway, IReadOnlyList<IResourceBuilder<IResourceWithEndpoints>> replicas)
    {
        var service = replicas[0].Resource.Name;
        for (var i = 1; i < replicas.Count; i++)
        {
            gateway.WithEnvironment($"services__{service}__{TritonResourceExtensions.GrpcEndpoint}__{i}", replicas[i].GetEndpoint(TritonResourceExtensions.GrpcEndpoint))
                .WithEnvironment($"services__{service}__{TritonResourceExtensions.MetricsEndpoint}__{i}", replicas[i].GetEndpoint(TritonResourceExtensions.MetricsEndpoint))
                .WaitFor(replicas[i]);
        }
        return gateway;
    }
}
