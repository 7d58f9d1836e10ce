using System.Net.Sockets;
using System.Text;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;

namespace Aspire.Hosting;

/// <summary>
/// The `redis` resource that holds the quotas every gateway replica shares (the gateway reads
/// <c>ConnectionStrings:redis</c>):
/// <list type="bullet">
/// <item>publish mode: Aspire's Redis container (a Deployment + Service in the GKE manifests,
/// password in the gateway's Secret); with <c>Redis:External=true</c> no container but a
/// connection string supplied at deploy time (e.g. Memorystore's address) in the gateway's Secret;</item>
/// <item>run mode: the local <c>redis-server</c> (Debian package) as an executable on port 6379 when
/// it is installed, else the Redis container when a container runtime is on the PATH, else nothing:
/// the gateway then keeps its quotas in memory (logged at start).</item>
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

        if (FindOnPath("redis-server") is { } redisServer)
        {
            var port = builder.Configuration.GetValue("Redis:Port", LocalPort);
            var healthCheck = $"{name}-ping";
            builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(healthCheck, _ => new RedisPingHealthCheck(port), failureStatus: null, tags: null));
            var redis = builder.AddExecutable(name, redisServer, builder.AppHostDirectory,
                    "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
                .WithEndpoint(port: port, targetPort: port, scheme: "tcp", name: EndpointName, isProxied: false)
                .WithHealthCheck(healthCheck);
            var endpoint = redis.GetEndpoint(EndpointName);
            gateway.WithEnvironment("ConnectionStrings__redis", ReferenceExpression.Create($"{endpoint.Property(EndpointProperty.HostAndPort)}"))
                .WaitFor(redis);
            return builder;
        }

        if (FindOnPath("docker") is not null || FindOnPath("podman") is not null)
        {
            var redis = builder.AddRedis(name);
            gateway.WithReference(redis).WaitFor(redis);
            return builder;
        }

        builder.Eventing.Subscribe<BeforeStartEvent>((@event, _) =>
        {
            var logger = @event.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Aspire.Hosting.Redis");
            logger.LogWarning("Neither redis-server nor a container runtime was found: no '{Name}' resource; the gateway keeps its quotas in memory (apt-get install redis-server to share them)", name);
            return Task.CompletedTask;
        });
        return builder;
    }

    private static string? FindOnPath(string executable)
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, executable);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
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
