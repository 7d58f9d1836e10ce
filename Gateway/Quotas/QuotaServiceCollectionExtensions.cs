using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Gateway.Quotas;

internal static partial class QuotaServiceCollectionExtensions
{
    /// <summary>
    /// <see cref="IQuotaLimiter"/>: shared through Redis when <c>Gateway:Quotas:Redis</c> (or
    /// <c>ConnectionStrings:redis</c>) is set, else in memory per replica.
    /// </summary>
    public static IServiceCollection AddQuotas(this IServiceCollection services)
    {
        services.AddOptions<QuotaOptions>().BindConfiguration(QuotaOptions.SectionName)
            .PostConfigure<IConfiguration>((options, configuration) =>
            {
                if (string.IsNullOrWhiteSpace(options.Redis))
                {
                    options.Redis = configuration.GetConnectionString("redis");
                }
            })
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<QuotaOptions>, QuotaOptionsValidator>();
        services.TryAddSingleton<IQuotaLimiter>(static provider =>
        {
            var options = provider.GetRequiredService<IOptions<QuotaOptions>>().Value;
            var logger = provider.GetRequiredService<ILoggerFactory>().CreateLogger("Gateway.Quotas");
            if (string.IsNullOrWhiteSpace(options.Redis))
            {
                LogInMemory(logger);
                return ActivatorUtilities.CreateInstance<RateLimitingQuotaLimiter>(provider);
            }
            LogShared(logger, options.KeyPrefix);
            return ActivatorUtilities.CreateInstance<RedisQuotaLimiter>(provider);
        });
        services.AddHostedService<QuotaStartup>();
        return services;
    }

    /// <summary>
    /// Holds the start until the first Redis connection attempt has ended, so a replica does not
    /// count its first requests locally just because it is still connecting.
    /// </summary>
    private sealed class QuotaStartup(IQuotaLimiter limiter) : IHostedService
    {
        public async Task StartAsync(CancellationToken cancellationToken)
        {
            if (limiter is RedisQuotaLimiter redis)
            {
                try
                {
                    await redis.ConnectAttemptAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (StackExchange.Redis.RedisException)
                {
                    // Unreachable: the limiter falls back to local quotas and keeps reconnecting.
                }
            }
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Quotas are in memory, per gateway replica (no Gateway:Quotas:Redis or ConnectionStrings:redis)")]
    private static partial void LogInMemory(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Quotas are shared through Redis (keys {KeyPrefix}{{key name}})")]
    private static partial void LogShared(ILogger logger, string keyPrefix);
}
