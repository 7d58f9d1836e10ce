using Aspire.Hosting.ApplicationModel;

namespace Aspire.Hosting;

/// <summary>The gateway: OpenAI REST + SSE on 5080 and the gRPC streaming face (h2c) on 5081.</summary>
internal static class GatewayResourceExtensions
{
    public const int RestPort = 5080;
    public const int GrpcPort = 5081;

    public static IResourceBuilder<ProjectResource> AddGateway(
        this IDistributedApplicationBuilder builder, string name, IResourceBuilder<IResourceWithEndpoints> triton)
    {
        return builder.AddProject<Projects.Gateway>(name, launchProfileName: null)
            .WithHttpEndpoint(port: RestPort, name: "http", env: "Gateway__RestPort", isProxied: false)
            .WithHttpEndpoint(port: GrpcPort, name: "grpc", env: "Gateway__GrpcPort", isProxied: false)
            .WithEndpoint("grpc", endpoint => endpoint.Transport = "http2")
            .WithReference(triton.GetEndpoint(TritonResourceExtensions.GrpcEndpoint))
            .WithReference(triton.GetEndpoint(TritonResourceExtensions.MetricsEndpoint))
            .WaitFor(triton)
            .WithHttpHealthCheck("/health", endpointName: "http");
    }
}
