using Microsoft.Extensions.Options;

namespace Gateway.Ledger;

/// <summary>Which SQL database holds keys and the ledger.</summary>
public enum LedgerProvider
{
    /// <summary>From the connection string: <c>Data Source=…</c> is SQLite, anything else PostgreSQL.</summary>
    Auto,
    Postgres,
    Sqlite,
}

/// <summary>
/// Managed keys and the usage ledger (section <c>Gateway:Ledger</c>). Without a connection string
/// (<c>Gateway:Ledger:ConnectionString</c> or <c>ConnectionStrings:ledger</c>) both are off: only the
/// static <c>Gateway:ApiKeys</c> work and usage exists only as metrics.
/// </summary>
public sealed class LedgerOptions
{
    public const string SectionName = "Gateway:Ledger";

    /// <summary><c>Gateway:Ledger:ConnectionString</c>; when empty, <c>ConnectionStrings:ledger</c> (Aspire's reference).</summary>
    public string? ConnectionString { get; set; }

    /// <summary><c>Gateway:Ledger:Provider</c>: Auto | Postgres | Sqlite.</summary>
    public LedgerProvider Provider { get; set; }

    /// <summary><c>Gateway:Ledger:BufferCapacity</c>: rows held in memory for the writer; beyond it rows go straight to the spill file.</summary>
    public int BufferCapacity { get; set; } = 65_536;

    /// <summary><c>Gateway:Ledger:MaxBatchSize</c>: rows per database transaction.</summary>
    public int MaxBatchSize { get; set; } = 1_000;

    /// <summary><c>Gateway:Ledger:FlushInterval</c>: how long the writer gathers rows before a write that is not full.</summary>
    public TimeSpan FlushInterval { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary><c>Gateway:Ledger:RetryInterval</c>: after a failed write, rows spill to the file for this long before the database is tried again.</summary>
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary><c>Gateway:Ledger:SpillDirectory</c>: where rows wait while the database is down (JSON lines, replayed when it answers).</summary>
    public string SpillDirectory { get; set; } = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "llm-gateway", "ledger-spill");

    /// <summary><c>Gateway:Ledger:KeyRefreshInterval</c>: how often each replica reloads keys and month totals (revocation reaches every replica within it).</summary>
    public TimeSpan KeyRefreshInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary><c>Gateway:Ledger:CommandTimeout</c>: a database command that takes longer fails (and its rows spill).</summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(5);

    public bool Enabled => !string.IsNullOrWhiteSpace(ConnectionString);

    public LedgerProvider EffectiveProvider => Provider != LedgerProvider.Auto ? Provider
        : ConnectionString is { } text && text.TrimStart().StartsWith("Data Source", StringComparison.OrdinalIgnoreCase) ? LedgerProvider.Sqlite
        : LedgerProvider.Postgres;
}

internal sealed class LedgerOptionsValidator : IValidateOptions<LedgerOptions>
{
    public ValidateOptionsResult Validate(string? name, LedgerOptions options)
    {
        var failures = new List<string>();
        if (options.BufferCapacity < 1)
        {
            failures.Add("Gateway:Ledger:BufferCapacity must be positive.");
        }
        if (options.MaxBatchSize < 1)
        {
            failures.Add("Gateway:Ledger:MaxBatchSize must be positive.");
        }
        if (options.FlushInterval < TimeSpan.Zero || options.FlushInterval > TimeSpan.FromMinutes(1))
        {
            failures.Add($"Gateway:Ledger:FlushInterval must be between 0 and 1 minute (was {options.FlushInterval}).");
        }
        if (options.RetryInterval <= TimeSpan.Zero)
        {
            failures.Add("Gateway:Ledger:RetryInterval must be positive.");
        }
        if (options.KeyRefreshInterval <= TimeSpan.Zero || options.KeyRefreshInterval > TimeSpan.FromMinutes(1))
        {
            failures.Add($"Gateway:Ledger:KeyRefreshInterval must be between 0 and 1 minute (was {options.KeyRefreshInterval}).");
        }
        if (options.CommandTimeout <= TimeSpan.Zero)
        {
            failures.Add("Gateway:Ledger:CommandTimeout must be positive.");
        }
        if (options.Enabled && string.IsNullOrWhiteSpace(options.SpillDirectory))
        {
            failures.Add("Gateway:Ledger:SpillDirectory must name a directory.");
        }
        if (options.Enabled)
        {
            try
            {
                _ = options.EffectiveProvider == LedgerProvider.Sqlite
                    ? new Microsoft.Data.Sqlite.SqliteConnectionStringBuilder(options.ConnectionString).ConnectionString
                    : new Npgsql.NpgsqlConnectionStringBuilder(options.ConnectionString).ConnectionString;
            }
            catch (ArgumentException ex)
            {
                failures.Add($"Gateway:Ledger:ConnectionString (or ConnectionStrings:ledger) is not a valid {options.EffectiveProvider} connection string: {ex.Message}");
            }
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
