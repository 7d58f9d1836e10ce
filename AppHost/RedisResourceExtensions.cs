using System.Net.Sockets;
using System.Text;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Aspire.Hosting;

/// <summary>
/// The `redis` resource that holds the quotas every gateway replica shares (the gateway reads
/// <c>ConnectionStrings:redis</c>):
/// <list type="bullet">
/// <item>publish mode: Aspire's Redis container (a Deployment + Service in the GKE manifests,
/// password in the gateway's Secret); with <c>Redis:External=true</c> no container but a
/// connection string supplied at deploy time (e.g. Memorystore's address) in the gateway's Secret;</item>
/// <item>run mode: chosen by <see cref="OptionalResourceChooser"/>: the Redis container where a
/// container engine works, else the local <c>redis-server</c> (Debian package) as an executable on
/// port 6379, else nothing: the gateway then keeps its quotas in memory. The AppHost log says
/// which and why; <c>Redis:Mode</c> forces one.</item>
/// </list>
/// </summary>
internal static class RedisResourceExtensions
{
    public const int LocalPort = 6379;
    private const string EndpointName = "tcp";

    /// <summary>Adds the quota store <paramref name="name"/> and references it from the project <paramref name="gatewayName"/>.</summary>
    public static IDistributedApplicationBuilder AddQuotaStore(this IDistributedApplicationBuilder builder, string name, string gatewayName)
    {
        var gateway = builder.CreateResourceBuilder(builder.Resources.OfType<ProjectResource>().Single(r => r.Name == gatewayName));
        if (builder.ExecutionContext.IsPublishMode)
        {
            if (builder.Configuration.GetValue<bool>("Redis:External"))
            {
                gateway.WithReference(builder.AddConnectionString(name));
            }
            else
            {
                var redis = builder.AddRedis(name);
                gateway.WithReference(redis).WaitFor(redis);
            }
            return builder;
        }

        var choice = builder.ChooseLocalMode(name, "Redis", "redis-server",
            "the gateway keeps its quotas in memory, per replica (install redis-server or start a container engine to share them)");
        switch (choice.Mode)
        {
            case ResourceMode.Container:
            {
                var redis = builder.AddRedis(name);
                gateway.WithReference(redis).WaitFor(redis);
                break;
            }
            case ResourceMode.Executable:
            {
                var port = builder.Configuration.GetValue("Redis:Port", LocalPort);
                var healthCheck = $"{name}-ping";
                builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(healthCheck, _ => new RedisPingHealthCheck(port), failureStatus: null, tags: null));
                var redis = builder.AddExecutable(name, choice.ExecutablePath!, builder.AppHostDirectory,
                        "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
                    .WithEndpoint(port: port, targetPort: port, scheme: "tcp", name: EndpointName, isProxied: false)
                    .WithHealthCheck(healthCheck);
                var endpoint = redis.GetEndpoint(EndpointName);
                gateway.WithEnvironment("ConnectionStrings__redis", ReferenceExpression.Create($"{endpoint.Property(EndpointProperty.HostAndPort)}"))
                    .WaitFor(redis);
                break;
            }
            default:
                // Embedded: no resource and nothing to wait for.
                break;
        }
        return builder;
    }

    /// <summary>Healthy when the local redis-server answers <c>PING</c> with <c>+PONG</c>.</summary>
    private sealed class RedisPingHealthCheck(int port) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync("127.0.0.1", port, cancellationToken).ConfigureAwait(false);
                var stream = client.GetStream();
                await stream.WriteAsync("PING\r\n"u8.ToArray(), cancellationToken).ConfigureAwait(false);
                var buffer = new byte[16];
                var read = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                return Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal)
                    ? HealthCheckResult.Healthy()
                    : HealthCheckResult.Unhealthy("unexpected reply to PING");
            }
            catch (SocketException ex)
            {
                return HealthCheckResult.Unhealthy(ex.Message);
            }
        }
    }
}
