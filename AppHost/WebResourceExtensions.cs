using System.Security.Cryptography;
using System.Text;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;

namespace Aspire.Hosting;

/// <summary>
/// The `web` resource: the Blazor chat front end on http://localhost:5090. It is an internal
/// service of the gateway and calls its gRPC face with its own API key, the secret parameter
/// <c>web-api-key</c>. The gateway gets only the key's SHA-256, as the API key entry
/// <c>Gateway:ApiKeys:web</c> (tenant <c>web</c>, every model, no rate limit of its own) when
/// running; a published deployment lists the entry in the gateway's operator-filled Secret.
/// </summary>
internal static class WebResourceExtensions
{
    public const int HttpPort = 5090;
    public const string ApiKeyParameter = "web-api-key";

    /// <summary>The key's name in the gateway's configuration (safe to log).</summary>
    public const string GatewayKeyName = "web";

    /// <summary>
    /// Used only when running locally in Development and no <c>Parameters:web-api-key</c> is
    /// configured; anywhere else the parameter must be set (user secrets, environment, deploy).
    /// </summary>
    public const string DevelopmentApiKey = "sk-dev-web-chat";

    public static IResourceBuilder<ProjectResource> AddWeb(
        this IDistributedApplicationBuilder builder, string name, IResourceBuilder<ProjectResource> gateway)
    {
        var useDevelopmentKey = builder.ExecutionContext.IsRunMode && builder.Environment.IsDevelopment();
        // Values are read when needed, so a missing key never blocks a publish (secret values are
        // never written there) and, outside Development, fails the web app's start with a
        // message naming GatewayClient:ApiKey.
        var apiKey = builder.AddParameter(ApiKeyParameter,
            () => builder.Configuration[$"Parameters:{ApiKeyParameter}"] ?? (useDevelopmentKey ? DevelopmentApiKey : ""),
            secret: true);

        if (builder.ExecutionContext.IsRunMode)
        {
            // The gateway stores only hashes: hash the resolved secret when the gateway starts.
            // (Published deployments keep every Gateway:ApiKeys entry in the gateway's Secret,
            // which the operator fills; docs/deploy-gke.md.)
            const string entry = $"Gateway__ApiKeys__{GatewayKeyName}__";
            gateway
                .WithEnvironment(entry + "Tenant", GatewayKeyName)
                .WithEnvironment(entry + "AllowedModels__0", "*")
                .WithEnvironment(async context =>
                {
                    var key = await apiKey.Resource.GetValueAsync(context.CancellationToken).ConfigureAwait(false) ?? "";
                    context.EnvironmentVariables[entry + "Sha256"] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
                });
        }

        return builder.AddProject<Projects.Web>(name, launchProfileName: null)
            .WithHttpEndpoint(port: HttpPort, name: "http", isProxied: false)
            .WithEnvironment("GatewayClient__ApiKey", apiKey)
            .WithReference(gateway.GetEndpoint("grpc"))
            // The usage page calls the gateway's REST admin API (with the admin's own key).
            .WithReference(gateway.GetEndpoint("http"))
            .WaitFor(gateway)
            .WithHttpHealthCheck("/health", endpointName: "http");
    }
}
