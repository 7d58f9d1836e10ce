#pragma warning disable ASPIREPIPELINES001, ASPIREPIPELINES002 // pipeline APIs are experimental in Aspire 13
using System.Globalization;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Pipelines;
using Aspire.Hosting.Publishing.Kubernetes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Aspire.Hosting;

/// <summary>
/// Publishes the AppHost's graph as GKE manifests (Aspirate's kustomize layout) from a pipeline
/// step that the <c>publish</c> step requires:
/// <code>dotnet run --project AppHost -- --operation publish --step publish --output-path .</code>
/// writes <c>&lt;output-path&gt;/aspirate-output/</c>. A relative output path is taken from the
/// repository root (the AppHost folder's parent), not from the working directory, because
/// <c>dotnet run</c> starts an AppHost inside its own folder; so the command above regenerates
/// the committed <c>aspirate-output/</c> from wherever it is run.
/// </summary>
internal static class GkePublishingExtensions
{
    public const string StepName = "publish-gke-manifests";

    public static IDistributedApplicationBuilder AddGkePublishing(this IDistributedApplicationBuilder builder)
    {
        if (!builder.ExecutionContext.IsPublishMode)
        {
            return builder;
        }

        // Publishing is a pure function of the AppHost and its arguments (see TransientDeploymentState).
        builder.Services.RemoveAll<IDeploymentStateManager>();
        builder.Services.AddSingleton<IDeploymentStateManager, TransientDeploymentState>();

        // Each value can be set with --Parameters:<name>=<value> (or in appsettings / user secrets).
        var parameters = new GkeParameters(
            Namespace: Parameter(builder, "k8s-namespace", "llm-gateway"),
            Accelerator: Parameter(builder, "gke-accelerator", "nvidia-tesla-a100"),
            GpuCount: Parameter(builder, "triton-gpu-count", "1"),
            ModelBucket: Parameter(builder, "triton-model-bucket", "llm-gateway-triton-models"),
            ImageRegistry: Parameter(builder, "image-registry", "us-central1-docker.pkg.dev/my-project/llm-gateway"),
            ImageTag: Parameter(builder, "image-tag", "latest"),
            OtlpEndpoint: Parameter(builder, "otlp-endpoint", "http://opentelemetry-collector.gke-managed-otel.svc.cluster.local:4317"),
            GatewayClass: Parameter(builder, "gke-gateway-class", "gke-l7-global-external-managed"));
        var repositoryRoot = Path.GetFullPath(Path.Combine(builder.AppHostDirectory, ".."));

        builder.Pipeline.AddStep(StepName, async context =>
        {
            var outputPath = context.Services.GetRequiredService<IOptions<PipelineOptions>>().Value.OutputPath;
            var folder = Path.Combine(Path.GetFullPath(outputPath ?? ".", repositoryRoot), ManifestWriter.FolderName);

            var settings = await parameters.ResolveAsync(context.CancellationToken).ConfigureAwait(false);
            var workloads = await new ModelReader(context.ExecutionContext, settings)
                .ReadAsync(context.Model, context.CancellationToken).ConfigureAwait(false);
            var files = ManifestGenerator.Generate(workloads, settings);
            await ManifestWriter.WriteAsync(folder, files, context.CancellationToken).ConfigureAwait(false);

            context.Logger.LogInformation("Wrote {Count} GKE manifest files for {Workloads} to {Folder}",
                files.Count, string.Join(", ", workloads.Select(w => w.Name)), folder);
        }, dependsOn: WellKnownPipelineSteps.PublishPrereq, requiredBy: WellKnownPipelineSteps.Publish);

        return builder;
    }

    /// <summary>A parameter whose value is <c>Parameters:&lt;name&gt;</c> from configuration, else the default.</summary>
    private static ParameterResource Parameter(IDistributedApplicationBuilder builder, string name, string defaultValue) =>
        builder.AddParameter(name, () => builder.Configuration[$"Parameters:{name}"] ?? defaultValue, publishValueAsDefault: true).Resource;

    private sealed record GkeParameters(
        ParameterResource Namespace,
        ParameterResource Accelerator,
        ParameterResource GpuCount,
        ParameterResource ModelBucket,
        ParameterResource ImageRegistry,
        ParameterResource ImageTag,
        ParameterResource OtlpEndpoint,
        ParameterResource GatewayClass)
    {
        public async Task<GkeSettings> ResolveAsync(CancellationToken cancellationToken)
        {
            async Task<string> Value(ParameterResource parameter)
            {
                var value = await parameter.GetValueAsync(cancellationToken).ConfigureAwait(false);
                return string.IsNullOrWhiteSpace(value)
                    ? throw new InvalidOperationException($"Parameter '{parameter.Name}' (Parameters:{parameter.Name}) must not be empty.")
                    : value.Trim();
            }

            var gpuText = await Value(GpuCount).ConfigureAwait(false);
            if (!int.TryParse(gpuText, NumberStyles.None, CultureInfo.InvariantCulture, out var gpus) || gpus < 1)
            {
                throw new InvalidOperationException($"Parameter '{GpuCount.Name}' (Parameters:{GpuCount.Name}) must be a whole number ≥ 1, not '{gpuText}'.");
            }

            return new GkeSettings(
                Namespace: await Value(Namespace).ConfigureAwait(false),
                Accelerator: await Value(Accelerator).ConfigureAwait(false),
                GpuCount: gpus,
                ModelBucket: await Value(ModelBucket).ConfigureAwait(false),
                ImageRegistry: (await Value(ImageRegistry).ConfigureAwait(false)).TrimEnd('/'),
                ImageTag: await Value(ImageTag).ConfigureAwait(false),
                OtlpEndpoint: await Value(OtlpEndpoint).ConfigureAwait(false),
                GatewayClass: await Value(GatewayClass).ConfigureAwait(false));
        }
    }
}
