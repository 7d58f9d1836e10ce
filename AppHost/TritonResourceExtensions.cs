using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;

namespace Aspire.Hosting;

/// <summary>
/// The `triton` resource: the real Triton container (publish mode, or locally with
/// <c>Triton:UseContainer=true</c> and a GPU container runtime), otherwise the Triton-compatible
/// CPU engine under the same name and endpoints (http 8000, grpc 8001, metrics 8002).
/// </summary>
internal static class TritonResourceExtensions
{
    public const string HttpEndpoint = "http";
    public const string GrpcEndpoint = "grpc";
    public const string MetricsEndpoint = "metrics";

    public const int HttpPort = 8000;
    public const int GrpcPort = 8001;
    public const int MetricsPort = 8002;

    public const string DefaultImage = "triton_with_ft";
    public const string DefaultTag = "23.05";

    /// <param name="portOffset">Added to 8000/8001/8002, so local replicas can run side by side (see TritonReplicaExtensions).</param>
    public static IResourceBuilder<IResourceWithEndpoints> AddTriton(this IDistributedApplicationBuilder builder, string name, int portOffset = 0)
    {
        // The repository's models/ folder, or another Triton model repository (Triton:ModelRepository,
        // e.g. models-trtllm for TensorRT-LLM's inflight_batcher_llm layout).
        var modelRepository = TritonModelRepository.Resolve(builder);
        var tensorRtLlm = TritonModelRepository.IsTensorRtLlm(modelRepository);
        var useContainer = builder.ExecutionContext.IsPublishMode
            || builder.Configuration.GetValue<bool>("Triton:UseContainer");

        // Declared in every mode so they show in the dashboard and in published manifests.
        var defaultImage = tensorRtLlm ? TritonModelRepository.TensorRtLlmImage : DefaultImage;
        var defaultTag = tensorRtLlm ? TritonModelRepository.TensorRtLlmTag : DefaultTag;
        var image = Parameter(builder, "triton-image", defaultImage);
        var tag = Parameter(builder, "triton-tag", defaultTag);

        if (useContainer)
        {
            var container = builder.AddContainer(
                    name,
                    builder.Configuration["Parameters:triton-image"] ?? defaultImage,
                    builder.Configuration["Parameters:triton-tag"] ?? defaultTag)
                .WithBindMount(modelRepository, "/models", isReadOnly: true)
                .WithHttpEndpoint(port: HttpPort + portOffset, targetPort: HttpPort, name: HttpEndpoint)
                .WithHttpEndpoint(port: GrpcPort + portOffset, targetPort: GrpcPort, name: GrpcEndpoint)
                .WithHttpEndpoint(port: MetricsPort + portOffset, targetPort: MetricsPort, name: MetricsEndpoint)
                .WithEndpoint(GrpcEndpoint, endpoint => endpoint.Transport = "http2")
                .WithArgs("tritonserver", "--model-repository=/models", "--allow-metrics=true", "--allow-gpu-metrics=true")
                .WithContainerRuntimeArgs("--gpus=all", "--shm-size=1g", "--ulimit", "memlock=-1")
                .WithHttpHealthCheck("/v2/health/ready", endpointName: HttpEndpoint)
                .WithAnnotation(new TritonImageParametersAnnotation(image.Resource, tag.Resource));
            if (tensorRtLlm)
            {
                // TensorRT-LLM engines (rank*.engine, config.json) and the tokenizer live outside the
                // repository: models-trtllm's gpt_model_path and tokenizer_dir point under /engines.
                container.WithBindMount(TritonModelRepository.EngineDirectory(builder), TritonModelRepository.EnginesMountPath, isReadOnly: true);
            }
            return container;
        }

        var emulator = builder.AddProject<Projects.TritonEmulator>(name, launchProfileName: null)
            .WithHttpEndpoint(port: HttpPort + portOffset, name: HttpEndpoint, env: "Emulator__HttpPort", isProxied: false)
            .WithHttpEndpoint(port: GrpcPort + portOffset, name: GrpcEndpoint, env: "Emulator__GrpcPort", isProxied: false)
            .WithHttpEndpoint(port: MetricsPort + portOffset, name: MetricsEndpoint, env: "Emulator__MetricsPort", isProxied: false)
            .WithEndpoint(GrpcEndpoint, endpoint => endpoint.Transport = "http2")
            .WithEnvironment("Emulator__ModelRepository", modelRepository)
            .WithEnvironment("Emulator__Profile", builder.Configuration["Triton:Profile"] ?? "a100-gptj-6b")
            .WithHttpHealthCheck("/v2/health/ready", endpointName: HttpEndpoint);
        return emulator;
    }

    /// <summary>One parameter per name however many replicas are declared.</summary>
    private static IResourceBuilder<ParameterResource> Parameter(IDistributedApplicationBuilder builder, string name, string defaultValue) =>
        builder.Resources.OfType<ParameterResource>().FirstOrDefault(p => p.Name == name) is { } existing
            ? builder.CreateResourceBuilder(existing)
            : builder.AddParameter(name, defaultValue, publishValueAsDefault: true);
}

/// <summary>Links the Triton container to the parameters that name its image (used by the publisher).</summary>
internal sealed record TritonImageParametersAnnotation(ParameterResource Image, ParameterResource Tag) : IResourceAnnotation;
