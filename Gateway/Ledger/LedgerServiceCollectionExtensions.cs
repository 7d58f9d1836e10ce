using Gateway.Auth;
using Gateway.Keys;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Gateway.Ledger;

internal static partial class LedgerServiceCollectionExtensions
{
    /// <summary>
    /// Managed keys, budgets, the usage ledger and the admin API's services. With no database
    /// configured the ledger records nothing and only the static keys authenticate.
    /// </summary>
    public static IServiceCollection AddKeysAndLedger(this IServiceCollection services)
    {
        services.AddOptions<LedgerOptions>().BindConfiguration(LedgerOptions.SectionName)
            .PostConfigure<IConfiguration>((options, configuration) =>
            {
                if (string.IsNullOrWhiteSpace(options.ConnectionString))
                {
                    options.ConnectionString = configuration.GetConnectionString("ledger");
                }
            })
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<LedgerOptions>, LedgerOptionsValidator>();
        services.AddOptions<AdminOptions>().BindConfiguration(AdminOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<AdminOptions>, AdminOptionsValidator>();

        services.AddSingleton<LedgerStore>();
        services.AddSingleton<KeyBudgets>();
        services.AddSingleton<UsageLedger>();
        services.TryAddSingleton<IUsageLedger>(static provider =>
            provider.GetRequiredService<IOptions<LedgerOptions>>().Value.Enabled ? provider.GetRequiredService<UsageLedger>() : new NoUsageLedger());
        services.AddSingleton<ManagedKeyCache>();
        services.AddSingleton<ApiKeyAuthenticator>();
        services.TryAddSingleton<IApiKeyAuthenticator>(static provider => provider.GetRequiredService<IOptions<LedgerOptions>>().Value.Enabled
            ? ActivatorUtilities.CreateInstance<ManagedKeyAuthenticator>(provider)
            : provider.GetRequiredService<ApiKeyAuthenticator>());
        services.AddSingleton<AdminHandler>();
        services.AddHostedService<LedgerStartup>();
        return services;
    }

    /// <summary>
    /// Starts the writer and the key refresh when a database is configured, and holds the start
    /// (bounded) until the schema is migrated and the keys are loaded, so a replica does not answer
    /// a managed key with 401 just because it is still starting. A database that is down does not
    /// block the start: rows spill and keys load once it answers.
    /// </summary>
    private sealed partial class LedgerStartup(IOptions<LedgerOptions> options, IServiceProvider provider, ILogger<LedgerStartup> logger) : IHostedService
    {
        private static readonly TimeSpan StartWait = TimeSpan.FromSeconds(20);

        public async Task StartAsync(CancellationToken cancellationToken)
        {
            var settings = options.Value;
            if (!settings.Enabled)
            {
                LogDisabled(logger);
                return;
            }
            var ledger = provider.GetRequiredService<UsageLedger>();
            var cache = provider.GetRequiredService<ManagedKeyCache>();
            await ledger.StartAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await ledger.Ready.WaitAsync(StartWait, cancellationToken).ConfigureAwait(false);
                await cache.RefreshAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                LogNotReady(logger, settings.EffectiveProvider, StartWait.TotalSeconds);
            }
            await cache.StartAsync(cancellationToken).ConfigureAwait(false);
            LogEnabled(logger, settings.EffectiveProvider, settings.SpillDirectory);
        }

        public async Task StopAsync(CancellationToken cancellationToken)
        {
            if (!options.Value.Enabled)
            {
                return;
            }
            await provider.GetRequiredService<ManagedKeyCache>().StopAsync(cancellationToken).ConfigureAwait(false);
            await provider.GetRequiredService<UsageLedger>().StopAsync(cancellationToken).ConfigureAwait(false);
        }

        [LoggerMessage(Level = LogLevel.Information, Message = "No key and usage database (Gateway:Ledger:ConnectionString or ConnectionStrings:ledger): only Gateway:ApiKeys authenticate, usage is metrics only, the admin API answers 503")]
        private static partial void LogDisabled(ILogger logger);

        [LoggerMessage(Level = LogLevel.Information, Message = "Managed keys and the usage ledger on {Provider}; spill directory {SpillDirectory}")]
        private static partial void LogEnabled(ILogger logger, LedgerProvider provider, string spillDirectory);

        [LoggerMessage(Level = LogLevel.Warning, Message = "The {Provider} key and usage database did not answer within {Seconds} s of start; managed keys load once it does")]
        private static partial void LogNotReady(ILogger logger, LedgerProvider provider, double seconds);
    }
}
