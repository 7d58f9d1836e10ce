using System.Data.Common;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Gateway.Ledger;

/// <summary>A managed API key as stored (its secret only as a SHA-256 hash).</summary>
public sealed record ManagedKey
{
    public required string Id { get; init; }
    public required string Name { get; init; }
    public required string Tenant { get; init; }
    public required string SecretSha256 { get; init; }
    public required string SecretPrefix { get; init; }
    public required IReadOnlyList<string> AllowedModels { get; init; }
    public int RequestsPerMinute { get; init; }
    public int TokensPerMinute { get; init; }
    public long MonthlyTokenBudget { get; init; }
    public long? ExpiresAtMs { get; init; }
    public long CreatedAtMs { get; init; }
    public long UpdatedAtMs { get; init; }
    public long? RevokedAtMs { get; init; }
}

/// <summary>Filters and grouping of <c>/admin/v1/usage</c>.</summary>
public sealed record UsageQuery
{
    public string? KeyId { get; init; }
    public string? Tenant { get; init; }
    public string? Model { get; init; }
    public long? FromMs { get; init; }
    public long? ToMs { get; init; }
    public bool ByDay { get; init; }
    public bool ByModel { get; init; }
    public bool ByKey { get; init; }
}

public sealed record UsageRow(string? KeyId, string? Tenant, string? Model, string? Period, long Requests, long PromptTokens, long CompletionTokens, long Cancelled, long Failed, long Refused);

/// <summary>
/// The SQL behind keys and the ledger, for PostgreSQL (Npgsql; rows arrive by binary COPY) and
/// SQLite (the embedded local default). Schema changes are the numbered SQL files under
/// Ledger/Migrations/{postgres,sqlite}, applied once each, in order, at start.
/// </summary>
internal sealed class LedgerStore : IAsyncDisposable
{
    private readonly LedgerOptions _options;
    private readonly NpgsqlDataSource? _postgres;
    private readonly string? _sqlite;

    public LedgerStore(IOptions<LedgerOptions> options)
    {
        _options = options.Value;
        if (!_options.Enabled)
        {
            return;
        }
        if (_options.EffectiveProvider == LedgerProvider.Sqlite)
        {
            var builder = new SqliteConnectionStringBuilder(_options.ConnectionString) { Pooling = true };
            if (Path.GetDirectoryName(Path.GetFullPath(builder.DataSource)) is { } directory)
            {
                Directory.CreateDirectory(directory);
            }
            builder.DefaultTimeout = (int)Math.Ceiling(_options.CommandTimeout.TotalSeconds);
            _sqlite = builder.ConnectionString;
        }
        else
        {
            var builder = new NpgsqlConnectionStringBuilder(_options.ConnectionString);
            builder.CommandTimeout = (int)Math.Ceiling(_options.CommandTimeout.TotalSeconds);
            if (builder.Timeout > 5)
            {
                builder.Timeout = 5; // a database that is down must fail a write fast: its rows spill
            }
            builder.ApplicationName ??= "llm-gateway";
            _postgres = NpgsqlDataSource.Create(builder.ConnectionString);
        }
    }

    public bool IsSqlite => _sqlite is not null;

    public LedgerProvider Provider => IsSqlite ? LedgerProvider.Sqlite : LedgerProvider.Postgres;

    private async Task<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        if (_postgres is not null)
        {
            return await _postgres.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        }
        var connection = new SqliteConnection(_sqlite ?? throw new InvalidOperationException("The ledger is not configured."));
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        return connection;
    }

    private static DbCommand Command(DbConnection connection, string sql, DbTransaction? transaction = null)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        return command;
    }

    private static void Add(DbCommand command, string name, object? value)
    {
        var parameter = command.CreateParameter();
        parameter.ParameterName = name;
        parameter.Value = value ?? DBNull.Value;
        command.Parameters.Add(parameter);
    }

    /// <summary>
    /// Applies the migrations this database has not seen, each in its own transaction with its
    /// version row; on PostgreSQL an advisory lock keeps two replicas from racing. Returns the versions applied.
    /// </summary>
    public async Task<IReadOnlyList<int>> MigrateAsync(CancellationToken cancellationToken)
    {
        var folder = IsSqlite ? "sqlite" : "postgres";
        var assembly = typeof(LedgerStore).Assembly;
        var prefix = $"{assembly.GetName().Name}.Ledger.Migrations.{folder}.";
        var migrations = assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(prefix, StringComparison.Ordinal) && n.EndsWith(".sql", StringComparison.Ordinal))
            .Select(n => (Name: n[prefix.Length..], Resource: n))
            .Select(m => (Version: int.Parse(m.Name.AsSpan(0, m.Name.IndexOf('_')), CultureInfo.InvariantCulture), m.Name, m.Resource))
            .OrderBy(m => m.Version)
            .ToList();
        var applied = new List<int>();
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        if (IsSqlite)
        {
            await using var wal = Command(connection, "PRAGMA journal_mode=WAL;");
            await wal.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await using var take = Command(connection, "SELECT pg_advisory_lock(727001)");
            await take.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        try
        {
            await using (var create = Command(connection,
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at_ms bigint NOT NULL)"))
            {
                await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            var seen = new HashSet<int>();
            await using (var read = Command(connection, "SELECT version FROM schema_migrations"))
            await using (var reader = await read.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    seen.Add(Convert.ToInt32(reader.GetValue(0), CultureInfo.InvariantCulture));
                }
            }
            foreach (var (version, name, resource) in migrations)
            {
                if (seen.Contains(version))
                {
                    continue;
                }
                string sql;
                using (var stream = assembly.GetManifestResourceStream(resource)!)
                using (var text = new StreamReader(stream, Encoding.UTF8))
                {
                    sql = await text.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
                }
                await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                await using (var migrate = Command(connection, sql, transaction))
                {
                    await migrate.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }
                await using (var record = Command(connection, "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (@v, @n, @t)", transaction))
                {
                    Add(record, "v", version);
                    Add(record, "n", name);
                    Add(record, "t", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
                    await record.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                }
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                applied.Add(version);
            }
        }
        finally
        {
            if (!IsSqlite)
            {
                await using var release = Command(connection, "SELECT pg_advisory_unlock(727001)");
                await release.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }
        return applied;
    }

    private const string PostgresMonth = "to_char(to_timestamp(started_at_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM')";
    private const string SqliteMonth = "strftime('%Y-%m', started_at_ms / 1000, 'unixepoch')";

    /// <summary>
    /// Writes rows in one transaction; a row whose request id is already there is skipped (a
    /// replayed spill file bills nothing twice), and only new rows add to the month totals.
    /// </summary>
    public async Task WriteAsync(IReadOnlyList<UsageRecord> rows, CancellationToken cancellationToken)
    {
        if (rows.Count == 0)
        {
            return;
        }
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        if (connection is NpgsqlConnection npgsql)
        {
            await WritePostgresAsync(npgsql, rows, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await WriteSqliteAsync(connection, transaction, rows, cancellationToken).ConfigureAwait(false);
        }
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private const string Columns = "request_id, key_id, key_name, tenant, model, operation, gateway, replica, status, reason, prompt_tokens, completion_tokens, ttft_ms, duration_ms, started_at_ms";

    private static async Task WritePostgresAsync(NpgsqlConnection connection, IReadOnlyList<UsageRecord> rows, CancellationToken cancellationToken)
    {
        await using (var create = new NpgsqlCommand("CREATE TEMP TABLE IF NOT EXISTS incoming_usage (LIKE usage_records) ON COMMIT DELETE ROWS", connection))
        {
            await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        }
        await using (var copy = await connection.BeginBinaryImportAsync($"COPY incoming_usage ({Columns}) FROM STDIN (FORMAT BINARY)", cancellationToken).ConfigureAwait(false))
        {
            foreach (var row in rows)
            {
                await copy.StartRowAsync(cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(row.RequestId, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(row.KeyId, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(row.KeyName, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(row.Tenant, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(row.Model, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(row.Operation, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(row.Gateway, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await WriteNullableAsync(copy, row.Replica, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(row.Status, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await WriteNullableAsync(copy, row.Reason, NpgsqlDbType.Text, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(row.PromptTokens, NpgsqlDbType.Integer, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(row.CompletionTokens, NpgsqlDbType.Integer, cancellationToken).ConfigureAwait(false);
                if (row.TtftMs is { } ttft)
                {
                    await copy.WriteAsync(ttft, NpgsqlDbType.Double, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await copy.WriteNullAsync(cancellationToken).ConfigureAwait(false);
                }
                await copy.WriteAsync(row.DurationMs, NpgsqlDbType.Double, cancellationToken).ConfigureAwait(false);
                await copy.WriteAsync(row.StartedAtMs, NpgsqlDbType.Bigint, cancellationToken).ConfigureAwait(false);
            }
            await copy.CompleteAsync(cancellationToken).ConfigureAwait(false);
        }
        await using var insert = new NpgsqlCommand($"""
            WITH inserted AS (
                INSERT INTO usage_records ({Columns}) SELECT {Columns} FROM incoming_usage
                ON CONFLICT (request_id) DO NOTHING
                RETURNING key_id, started_at_ms, status, prompt_tokens, completion_tokens)
            INSERT INTO key_month_usage (key_id, month, tokens)
            SELECT key_id, {PostgresMonth}, sum(prompt_tokens + completion_tokens)
            FROM inserted WHERE key_id IS NOT NULL AND status <> 'refused'
            GROUP BY 1, 2
            ON CONFLICT (key_id, month) DO UPDATE SET tokens = key_month_usage.tokens + excluded.tokens
            """, connection);
        await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private static Task WriteNullableAsync(NpgsqlBinaryImporter copy, string? value, NpgsqlDbType type, CancellationToken cancellationToken) =>
        value is null ? copy.WriteNullAsync(cancellationToken) : copy.WriteAsync(value, type, cancellationToken);

    private static async Task WriteSqliteAsync(DbConnection connection, DbTransaction transaction, IReadOnlyList<UsageRecord> rows, CancellationToken cancellationToken)
    {
        await using var insert = Command(connection, $"""
            INSERT INTO usage_records ({Columns})
            VALUES (@request_id, @key_id, @key_name, @tenant, @model, @operation, @gateway, @replica, @status, @reason, @prompt_tokens, @completion_tokens, @ttft_ms, @duration_ms, @started_at_ms)
            ON CONFLICT (request_id) DO NOTHING
            """, transaction);
        await using var total = Command(connection, $"""
            INSERT INTO key_month_usage (key_id, month, tokens)
            SELECT @key_id, strftime('%Y-%m', @started_at_ms / 1000, 'unixepoch'), @tokens WHERE true
            ON CONFLICT (key_id, month) DO UPDATE SET tokens = key_month_usage.tokens + excluded.tokens
            """, transaction);
        foreach (var row in rows)
        {
            insert.Parameters.Clear();
            Add(insert, "request_id", row.RequestId);
            Add(insert, "key_id", row.KeyId);
            Add(insert, "key_name", row.KeyName);
            Add(insert, "tenant", row.Tenant);
            Add(insert, "model", row.Model);
            Add(insert, "operation", row.Operation);
            Add(insert, "gateway", row.Gateway);
            Add(insert, "replica", row.Replica);
            Add(insert, "status", row.Status);
            Add(insert, "reason", row.Reason);
            Add(insert, "prompt_tokens", row.PromptTokens);
            Add(insert, "completion_tokens", row.CompletionTokens);
            Add(insert, "ttft_ms", row.TtftMs);
            Add(insert, "duration_ms", row.DurationMs);
            Add(insert, "started_at_ms", row.StartedAtMs);
            var added = await insert.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            if (added == 1 && row.BilledTokens > 0)
            {
                total.Parameters.Clear();
                Add(total, "key_id", row.KeyId);
                Add(total, "started_at_ms", row.StartedAtMs);
                Add(total, "tokens", row.BilledTokens);
                await total.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    private const string KeyColumns = "id, name, tenant, secret_sha256, secret_prefix, allowed_models, requests_per_minute, tokens_per_minute, monthly_token_budget, expires_at_ms, created_at_ms, updated_at_ms, revoked_at_ms";

    public async Task InsertKeyAsync(ManagedKey key, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = Command(connection, $"""
            INSERT INTO api_keys ({KeyColumns})
            VALUES (@id, @name, @tenant, @secret_sha256, @secret_prefix, @allowed_models, @rpm, @tpm, @budget, @expires, @created, @updated, NULL)
            """);
        AddEditable(command, key);
        Add(command, "secret_sha256", key.SecretSha256);
        Add(command, "secret_prefix", key.SecretPrefix);
        Add(command, "created", key.CreatedAtMs);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The key's id and what an update may change (name, tenant, models, limits, budget, expiry, update time).</summary>
    private static void AddEditable(DbCommand command, ManagedKey key)
    {
        Add(command, "id", key.Id);
        Add(command, "name", key.Name);
        Add(command, "tenant", key.Tenant);
        Add(command, "allowed_models", JsonSerializer.Serialize(key.AllowedModels, LedgerStoreJson.Default.IReadOnlyListString));
        Add(command, "rpm", key.RequestsPerMinute);
        Add(command, "tpm", key.TokensPerMinute);
        Add(command, "budget", key.MonthlyTokenBudget);
        Add(command, "expires", key.ExpiresAtMs);
        Add(command, "updated", key.UpdatedAtMs);
    }

    /// <summary>Changes a key's limits and budget; false when there is no such key.</summary>
    public async Task<bool> UpdateKeyAsync(ManagedKey key, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = Command(connection, """
            UPDATE api_keys SET name = @name, tenant = @tenant, allowed_models = @allowed_models, requests_per_minute = @rpm,
                tokens_per_minute = @tpm, monthly_token_budget = @budget, expires_at_ms = @expires, updated_at_ms = @updated
            WHERE id = @id
            """);
        AddEditable(command, key);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <summary>Revokes a key (it stays, with its usage); false when there is no such key.</summary>
    public async Task<bool> RevokeKeyAsync(string id, long nowMs, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = Command(connection, "UPDATE api_keys SET revoked_at_ms = COALESCE(revoked_at_ms, @now), updated_at_ms = @now WHERE id = @id");
        Add(command, "id", id);
        Add(command, "now", nowMs);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) == 1;
    }

    /// <summary>Every key (revoked ones too) and the tokens each has used in <paramref name="month"/> (<c>yyyy-MM</c>, UTC).</summary>
    public async Task<(List<ManagedKey> Keys, Dictionary<string, long> MonthTokens)> LoadAsync(string month, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        var keys = new List<ManagedKey>();
        await using (var command = Command(connection, $"SELECT {KeyColumns} FROM api_keys ORDER BY created_at_ms, id"))
        await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                keys.Add(new ManagedKey
                {
                    Id = reader.GetString(0),
                    Name = reader.GetString(1),
                    Tenant = reader.GetString(2),
                    SecretSha256 = reader.GetString(3),
                    SecretPrefix = reader.GetString(4),
                    AllowedModels = JsonSerializer.Deserialize(reader.GetString(5), LedgerStoreJson.Default.IReadOnlyListString) ?? [],
                    RequestsPerMinute = Convert.ToInt32(reader.GetValue(6), CultureInfo.InvariantCulture),
                    TokensPerMinute = Convert.ToInt32(reader.GetValue(7), CultureInfo.InvariantCulture),
                    MonthlyTokenBudget = Convert.ToInt64(reader.GetValue(8), CultureInfo.InvariantCulture),
                    ExpiresAtMs = reader.IsDBNull(9) ? null : Convert.ToInt64(reader.GetValue(9), CultureInfo.InvariantCulture),
                    CreatedAtMs = Convert.ToInt64(reader.GetValue(10), CultureInfo.InvariantCulture),
                    UpdatedAtMs = Convert.ToInt64(reader.GetValue(11), CultureInfo.InvariantCulture),
                    RevokedAtMs = reader.IsDBNull(12) ? null : Convert.ToInt64(reader.GetValue(12), CultureInfo.InvariantCulture),
                });
            }
        }
        var totals = new Dictionary<string, long>(StringComparer.Ordinal);
        await using (var command = Command(connection, "SELECT key_id, tokens FROM key_month_usage WHERE month = @month"))
        {
            Add(command, "month", month);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                totals[reader.GetString(0)] = Convert.ToInt64(reader.GetValue(1), CultureInfo.InvariantCulture);
            }
        }
        return (keys, totals);
    }

    /// <summary>Usage summed over the filters, one row per group.</summary>
    public async Task<List<UsageRow>> QueryUsageAsync(UsageQuery query, CancellationToken cancellationToken)
    {
        var day = IsSqlite ? "strftime('%Y-%m-%d', started_at_ms / 1000, 'unixepoch')" : "to_char(to_timestamp(started_at_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')";
        var groups = new List<string>();
        var select = new StringBuilder("SELECT ");
        select.Append(query.ByKey ? "key_id" : "NULL").Append(", ");
        select.Append(query.ByKey ? "tenant" : "NULL").Append(", ");
        select.Append(query.ByModel ? "model" : "NULL").Append(", ");
        select.Append(query.ByDay ? day : "NULL");
        if (query.ByKey)
        {
            groups.Add("key_id");
            groups.Add("tenant");
        }
        if (query.ByModel)
        {
            groups.Add("model");
        }
        if (query.ByDay)
        {
            groups.Add(day);
        }
        select.Append("""
            , count(*) - sum(CASE WHEN status = 'refused' THEN 1 ELSE 0 END),
            coalesce(sum(prompt_tokens), 0), coalesce(sum(completion_tokens), 0),
            sum(CASE WHEN status = 'cancelled' THEN 1 ELSE 0 END),
            sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END),
            sum(CASE WHEN status = 'refused' THEN 1 ELSE 0 END)
            FROM usage_records WHERE 1 = 1
            """);
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = Command(connection, "");
        if (query.KeyId is not null)
        {
            select.Append(" AND key_id = @key_id");
            Add(command, "key_id", query.KeyId);
        }
        if (query.Tenant is not null)
        {
            select.Append(" AND tenant = @tenant");
            Add(command, "tenant", query.Tenant);
        }
        if (query.Model is not null)
        {
            select.Append(" AND model = @model");
            Add(command, "model", query.Model);
        }
        if (query.FromMs is { } from)
        {
            select.Append(" AND started_at_ms >= @from");
            Add(command, "from", from);
        }
        if (query.ToMs is { } to)
        {
            select.Append(" AND started_at_ms < @to");
            Add(command, "to", to);
        }
        if (groups.Count > 0)
        {
            select.Append(" GROUP BY ").AppendJoin(", ", groups).Append(" ORDER BY ").AppendJoin(", ", groups);
        }
        command.CommandText = select.ToString();
        var rows = new List<UsageRow>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            long Long(int i) => reader.IsDBNull(i) ? 0 : Convert.ToInt64(reader.GetValue(i), CultureInfo.InvariantCulture);
            string? Text(int i) => reader.IsDBNull(i) ? null : reader.GetString(i);
            if (groups.Count == 0 && Long(4) + Long(9) == 0)
            {
                break; // no rows at all: an empty list, not a row of zeros
            }
            rows.Add(new UsageRow(Text(0) ?? query.KeyId, Text(1) ?? query.Tenant, Text(2) ?? query.Model, Text(3), Long(4), Long(5), Long(6), Long(7), Long(8), Long(9)));
        }
        return rows;
    }

    public async ValueTask DisposeAsync()
    {
        if (_postgres is not null)
        {
            await _postgres.DisposeAsync().ConfigureAwait(false);
        }
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(IReadOnlyList<string>))]
internal sealed partial class LedgerStoreJson : System.Text.Json.Serialization.JsonSerializerContext;
