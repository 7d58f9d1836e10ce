using System.Security.Cryptography;
using System.Text;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Hosting;

namespace Aspire.Hosting;

/// <summary>The gateway: OpenAI REST + SSE on 5080 and the gRPC streaming face (h2c) on 5081.</summary>
internal static class GatewayResourceExtensions
{
    public const int RestPort = 5080;
    public const int GrpcPort = 5081;

    /// <summary>
    /// The local development API key (Development only, documented in the README). The gateway
    /// receives only its SHA-256 hash; clients in the graph (the web app) may be given the key.
    /// </summary>
    public const string DevApiKey = "sk-dev-local-gateway";

    /// <summary>The local development admin key for /admin/v1 (Development only, documented in the README; hash only to the gateway).</summary>
    public const string DevAdminKey = "sk-admin-dev-local";

    public static IResourceBuilder<ProjectResource> AddGateway(
        this IDistributedApplicationBuilder builder, string name, IResourceBuilder<IResourceWithEndpoints> triton)
    {
        var gateway = builder.AddProject<Projects.Gateway>(name, launchProfileName: null)
            .WithHttpEndpoint(port: RestPort, name: "http", env: "Gateway__RestPort", isProxied: false)
            .WithHttpEndpoint(port: GrpcPort, name: "grpc", env: "Gateway__GrpcPort", isProxied: false)
            .WithEndpoint("grpc", endpoint => endpoint.Transport = "http2")
            .WithReference(triton.GetEndpoint(TritonResourceExtensions.GrpcEndpoint))
            .WithReference(triton.GetEndpoint(TritonResourceExtensions.MetricsEndpoint))
            .WaitFor(triton)
            .WithHttpHealthCheck("/health", endpointName: "http")
            // A vLLM model folder dropped into models/ is served without configuration.
            .WithEnvironment("Gateway__ModelDiscovery__Enabled", "true");

        if (TritonModelRepository.IsTensorRtLlm(builder))
        {
            // TensorRT-LLM's repository: the public id stays gpt-j-6b, served by the ensemble under the
            // tensorrtllm contract, with the engine's build limits (models-trtllm/tensorrt_llm).
            gateway.WithEnvironment("Gateway__Models__gpt-j-6b__TritonModel", "ensemble")
                .WithEnvironment("Gateway__Models__gpt-j-6b__Contract", "tensorrtllm")
                .WithEnvironment("Gateway__Models__gpt-j-6b__ContextWindow", "2048")
                .WithEnvironment("Gateway__Models__gpt-j-6b__MaxInputTokens", "1024")
                .WithEnvironment("Gateway__Models__gpt-j-6b__MaxOutputTokens", "1024");
        }

        if (builder.ExecutionContext.IsRunMode)
        {
            // No load balancer locally: stopping the AppHost refuses new requests at once and
            // drains open streams (10 s at most); the cluster's values come with the manifests.
            gateway.WithEnvironment("Gateway__Shutdown__AcceptWindow", "00:00:00")
                .WithEnvironment("Gateway__Shutdown__DrainTimeout", "00:00:10");
        }

        if (builder.Environment.IsDevelopment() && !builder.ExecutionContext.IsPublishMode)
        {
            var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(DevApiKey)));
            gateway.WithEnvironment("Gateway__ApiKeys__dev__Sha256", hash)
                .WithEnvironment("Gateway__ApiKeys__dev__Tenant", "dev")
                .WithEnvironment("Gateway__ApiKeys__dev__AllowedModels__0", "*")
                .WithEnvironment("Gateway__ApiKeys__dev__RequestsPerMinute", "600")
                .WithEnvironment("Gateway__ApiKeys__dev__TokensPerMinute", "2000000")
                .WithEnvironment("Gateway__Admin__ApiKeySha256", Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(DevAdminKey))));
        }
        return gateway;
    }
}
