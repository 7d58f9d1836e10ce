using System.Globalization;
using Aspire.Hosting.ApplicationModel;

namespace Aspire.Hosting.Publishing.Kubernetes;

/// <summary>
/// Reads the compute resources of the Aspire model (projects and containers) into
/// <see cref="Workload"/>s: endpoints become named ports, environment callbacks are evaluated
/// in publish mode and every value is rendered for the cluster (an endpoint of resource R is
/// <c>scheme://R:port</c>, the name of R's Service). Secret parameters never become values:
/// an environment variable that uses one moves to the resource's Secret, an argument refers to
/// it as <c>$(NAME)</c>.
/// </summary>
internal sealed class ModelReader(DistributedApplicationExecutionContext executionContext, GkeSettings settings)
{
    /// <summary>The port a .NET container listens on when the model gives none (the images' default).</summary>
    public const int DefaultProjectPort = 8080;

    public async Task<IReadOnlyList<Workload>> ReadAsync(DistributedApplicationModel model, CancellationToken cancellationToken)
    {
        var workloads = new List<Workload>();
        foreach (var resource in model.Resources.OrderBy(r => r.Name, StringComparer.Ordinal))
        {
            if (resource is not (ProjectResource or ContainerResource) || IsExcludedFromPublish(resource))
            {
                continue;
            }
            workloads.Add(await ReadAsync(resource, cancellationToken).ConfigureAwait(false));
        }
        return workloads;
    }

    private static bool IsExcludedFromPublish(IResource resource) =>
        resource.TryGetLastAnnotation<ManifestPublishingCallbackAnnotation>(out var publishing) && publishing.Callback is null;

    private async Task<Workload> ReadAsync(IResource resource, CancellationToken cancellationToken)
    {
        var kind = resource is ProjectResource ? WorkloadKind.Project : WorkloadKind.Container;
        var isTriton = resource.Annotations.OfType<TritonImageParametersAnnotation>().Any();

        var ports = new List<WorkloadPort>();
        foreach (var endpoint in resource.Annotations.OfType<EndpointAnnotation>())
        {
            // TLS ends at the load balancer; a .NET pod serves plain HTTP (and h2c) only.
            if (kind == WorkloadKind.Project && endpoint.UriScheme == "https")
            {
                continue;
            }
            var port = TargetPort(endpoint, resource);
            if (ports.Any(p => p.Port == port))
            {
                continue;
            }
            ports.Add(new WorkloadPort(endpoint.Name, port, endpoint.Transport == "http2"));
        }

        var secretKeys = new SortedSet<string>(StringComparer.Ordinal);
        var environment = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (resource is IResourceWithEnvironment)
        {
            var values = new Dictionary<string, object>(StringComparer.Ordinal);
            var context = new EnvironmentCallbackContext(executionContext, resource, values, cancellationToken);
            foreach (var callback in resource.Annotations.OfType<EnvironmentCallbackAnnotation>())
            {
                await callback.Callback(context).ConfigureAwait(false);
            }
            foreach (var (key, value) in values)
            {
                var rendered = await RenderAsync(value, key, secretAsReference: false, cancellationToken).ConfigureAwait(false);
                if (rendered.Secret)
                {
                    secretKeys.Add(key);
                }
                else
                {
                    environment[key] = rendered.Text;
                }
            }
        }
        if (resource.Annotations.OfType<OtlpExporterAnnotation>().Any())
        {
            environment.TryAdd("OTEL_EXPORTER_OTLP_ENDPOINT", settings.OtlpEndpoint);
            environment.TryAdd("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
            environment.TryAdd("OTEL_SERVICE_NAME", resource.Name);
        }

        var args = new List<string>();
        if (resource is IResourceWithArgs)
        {
            var values = new List<object>();
            var context = new CommandLineArgsCallbackContext(values, resource, cancellationToken) { ExecutionContext = executionContext };
            foreach (var callback in resource.Annotations.OfType<CommandLineArgsCallbackAnnotation>())
            {
                await callback.Callback(context).ConfigureAwait(false);
            }
            foreach (var value in values)
            {
                var rendered = await RenderAsync(value, "argument", secretAsReference: true, cancellationToken).ConfigureAwait(false);
                args.Add(rendered.Text);
                secretKeys.UnionWith(rendered.SecretReferences);
            }
        }

        var mounts = resource.Annotations.OfType<ContainerMountAnnotation>()
            .Where(m => m.Type == ContainerMountType.BindMount)
            .Select(m => new WorkloadMount(m.Target, m.IsReadOnly))
            .ToList();

        var image = Image(resource, kind);
        // An entrypoint the model sets (Redis: /bin/sh -c "redis-server --requirepass $REDIS_PASSWORD") replaces the image's.
        var entrypoint = (resource as ContainerResource)?.Entrypoint;
        return new Workload(resource.Name, kind, image, ports, [.. environment], [.. secretKeys], args, mounts, isTriton, entrypoint);
    }

    private string Image(IResource resource, WorkloadKind kind)
    {
        if (kind == WorkloadKind.Project)
        {
            return $"{settings.ImageRegistry}/{resource.Name}:{settings.ImageTag}";
        }

        // The image annotation holds what configuration chose (Triton: Parameters:triton-image / -tag).
        if (!resource.TryGetLastAnnotation<ContainerImageAnnotation>(out var annotation))
        {
            throw new InvalidOperationException($"Container resource '{resource.Name}' has no image.");
        }
        var (image, tag, registry) = (annotation.Image, annotation.Tag, annotation.Registry);

        // An image built here (no registry, no repository path) is pushed to the project's registry.
        var reference = registry is not null ? $"{registry}/{image}"
            : image.Contains('/', StringComparison.Ordinal) ? image
            : $"{settings.ImageRegistry}/{image}";
        return string.IsNullOrEmpty(tag) ? reference : $"{reference}:{tag}";
    }

    internal static int TargetPort(EndpointAnnotation endpoint, IResource resource) =>
        endpoint.TargetPort ?? (resource is ProjectResource ? DefaultProjectPort : endpoint.Port)
        ?? throw new InvalidOperationException($"Endpoint '{endpoint.Name}' of '{resource.Name}' has no port.");

    private readonly record struct Rendered(string Text, bool Secret, IReadOnlyList<string> SecretReferences);

    private async ValueTask<Rendered> RenderAsync(object? value, string what, bool secretAsReference, CancellationToken cancellationToken)
    {
        switch (value)
        {
            case null:
                return new Rendered("", false, []);
            case string text:
                return new Rendered(text, false, []);
            case ParameterResource { Secret: true } secret:
                var key = EnvironmentName(secret.Name);
                return secretAsReference ? new Rendered($"$({key})", false, [key]) : new Rendered("", true, []);
            case ParameterResource parameter:
                return new Rendered(await parameter.GetValueAsync(cancellationToken).ConfigureAwait(false) ?? "", false, []);
            case EndpointReference endpoint:
                return new Rendered(Url(endpoint), false, []);
            case EndpointReferenceExpression expression:
                return new Rendered(Property(expression), false, []);
            case ConnectionStringReference connectionString:
                return await RenderAsync(connectionString.Resource.ConnectionStringExpression, what, secretAsReference, cancellationToken).ConfigureAwait(false);
            case IResourceWithConnectionString withConnectionString:
                return await RenderAsync(withConnectionString.ConnectionStringExpression, what, secretAsReference, cancellationToken).ConfigureAwait(false);
            case ReferenceExpression { IsConditional: true } conditional:
                var condition = await RenderAsync(conditional.Condition, what, secretAsReference, cancellationToken).ConfigureAwait(false);
                var branch = string.Equals(condition.Text, conditional.MatchValue, StringComparison.OrdinalIgnoreCase)
                    ? conditional.WhenTrue : conditional.WhenFalse;
                return await RenderAsync(branch, what, secretAsReference, cancellationToken).ConfigureAwait(false);
            case ReferenceExpression expression:
                var parts = new object?[expression.ValueProviders.Count];
                var isSecret = false;
                var references = new List<string>();
                for (var i = 0; i < parts.Length; i++)
                {
                    var part = await RenderAsync(expression.ValueProviders[i], what, secretAsReference, cancellationToken).ConfigureAwait(false);
                    parts[i] = expression.StringFormats[i] == "uri" ? Uri.EscapeDataString(part.Text) : part.Text;
                    isSecret |= part.Secret;
                    references.AddRange(part.SecretReferences);
                }
                return isSecret
                    ? new Rendered("", true, [])
                    : new Rendered(string.Format(CultureInfo.InvariantCulture, expression.Format, parts), false, references);
            default:
                throw new NotSupportedException(
                    $"The Kubernetes publisher cannot render {value.GetType().Name} ({what}); add a case to {nameof(ModelReader)}.");
        }
    }

    private static string Url(EndpointReference endpoint)
    {
        var annotation = endpoint.EndpointAnnotation;
        return $"{annotation.UriScheme}://{endpoint.Resource.Name}:{TargetPort(annotation, endpoint.Resource)}";
    }

    private static string Property(EndpointReferenceExpression expression)
    {
        var endpoint = expression.Endpoint;
        var port = TargetPort(endpoint.EndpointAnnotation, endpoint.Resource).ToString(CultureInfo.InvariantCulture);
        return expression.Property switch
        {
            EndpointProperty.Url => Url(endpoint),
            EndpointProperty.Host or EndpointProperty.IPV4Host => endpoint.Resource.Name,
            EndpointProperty.Port or EndpointProperty.TargetPort => port,
            EndpointProperty.Scheme => endpoint.EndpointAnnotation.UriScheme,
            EndpointProperty.HostAndPort => $"{endpoint.Resource.Name}:{port}",
            EndpointProperty.TlsEnabled => endpoint.EndpointAnnotation.UriScheme == "https" ? "true" : "false",
            _ => throw new NotSupportedException($"Endpoint property {expression.Property} is not supported."),
        };
    }

    /// <summary>A parameter name as an environment variable name: <c>redis-password</c> → <c>REDIS_PASSWORD</c>.</summary>
    internal static string EnvironmentName(string name) =>
        new([.. name.Select(c => char.IsAsciiLetterOrDigit(c) ? char.ToUpperInvariant(c) : '_')]);
}
