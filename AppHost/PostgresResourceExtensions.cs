using System.Diagnostics;
using Aspire.Hosting.ApplicationModel;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Aspire.Hosting;

/// <summary>
/// The database of managed keys and the usage ledger (the gateway reads <c>ConnectionStrings:ledger</c>):
/// <list type="bullet">
/// <item>publish mode: no workload; the connection string is supplied at deploy time in the gateway's
/// Secret (<c>ConnectionStrings__ledger</c>: Cloud SQL for PostgreSQL, see docs/deploy-gke.md);</item>
/// <item>run mode: chosen by <see cref="OptionalResourceChooser"/>: Aspire's PostgreSQL container
/// (data volume <c>llm-gateway-postgres</c>) where a container engine works, else the local
/// <c>postgres</c> (Debian's postgresql package; its <c>initdb</c> creates a data directory under
/// the user's local app data on first run) on port 55432, else an embedded SQLite file next to it,
/// with a warning. <c>Postgres:Mode</c> forces one.</item>
/// </list>
/// </summary>
internal static class PostgresResourceExtensions
{
    public const int LocalPort = 55432;
    private const string EndpointName = "tcp";
    private const string DatabaseName = "ledger";

    /// <summary>Adds the ledger database <paramref name="name"/> and references it from the project <paramref name="gatewayName"/>.</summary>
    public static IDistributedApplicationBuilder AddLedgerDatabase(this IDistributedApplicationBuilder builder, string name, string gatewayName)
    {
        var gateway = builder.CreateResourceBuilder(builder.Resources.OfType<ProjectResource>().Single(r => r.Name == gatewayName));
        if (builder.ExecutionContext.IsPublishMode)
        {
            // Cloud SQL (or any PostgreSQL) outside the cluster's workloads: ConnectionStrings__ledger comes from
            // the gateway's Secret (WorkloadPolicies.SecretExamples lists it), so no parameter is prompted for at publish.
            return builder;
        }

        var home = StateDirectory(builder.Configuration);
        var sqliteFile = builder.Configuration["Postgres:SqliteFile"] is { Length: > 0 } file ? file : Path.Combine(home, "ledger.db");
        var choice = builder.ChooseLocalMode(name, "Postgres", "postgres",
            $"keys and the usage ledger in the SQLite file {sqliteFile} (install postgresql or start a container engine for PostgreSQL)",
            executable => FindPostgres(builder.Configuration, executable));
        switch (choice.Mode)
        {
            case ResourceMode.Container:
            {
                var database = builder.AddPostgres(name).WithDataVolume("llm-gateway-postgres").AddDatabase(DatabaseName);
                gateway.WithReference(database).WaitFor(database);
                break;
            }
            case ResourceMode.Executable:
            {
                var port = builder.Configuration.GetValue("Postgres:Port", LocalPort);
                var dataDirectory = builder.Configuration["Postgres:DataDirectory"] is { Length: > 0 } configured ? configured : Path.Combine(home, "postgres", "data");
                var postgres = choice.ExecutablePath!;
                InitializeDataDirectory(Path.Combine(Path.GetDirectoryName(postgres)!, "initdb"), dataDirectory);
                var socketDirectory = Path.GetDirectoryName(Path.GetFullPath(dataDirectory))!;
                string[] arguments = ["-D", dataDirectory, "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-k", socketDirectory, "-c", "listen_addresses=127.0.0.1"];
                var (command, args) = AsPostgresUser(postgres, arguments);
                var healthCheck = $"{name}-ready";
                var connectionString = $"Host=127.0.0.1;Port={port};Username=postgres;Database=postgres";
                builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(healthCheck, _ => new PostgresReadyHealthCheck(connectionString), failureStatus: null, tags: null));
                var server = builder.AddExecutable(name, command, socketDirectory, args)
                    .WithEndpoint(port: port, targetPort: port, scheme: "tcp", name: EndpointName, isProxied: false)
                    .WithHealthCheck(healthCheck);
                gateway.WithEnvironment("ConnectionStrings__ledger", connectionString).WaitFor(server);
                break;
            }
            default:
                Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(sqliteFile))!);
                gateway.WithEnvironment("ConnectionStrings__ledger", $"Data Source={sqliteFile}");
                break;
        }
        return builder;
    }

    /// <summary>
    /// Where local state lives: the user's local app data (<c>~/.local/share/llm-gateway</c>); as root
    /// <c>/var/lib/llm-gateway</c>, since PostgreSQL runs as the <c>postgres</c> user, who cannot enter root's home.
    /// </summary>
    private static string StateDirectory(IConfiguration configuration) =>
        configuration["Postgres:StateDirectory"] is { Length: > 0 } configured ? configured
        : IsRoot ? "/var/lib/llm-gateway"
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "llm-gateway");

    private static bool IsRoot => OperatingSystem.IsLinux() && Environment.UserName == "root";

    /// <summary>
    /// <c>postgres</c> on the PATH, else in Debian's <c>/usr/lib/postgresql/&lt;version&gt;/bin</c> (newest first;
    /// <c>Postgres:SearchDirectories</c>, comma-separated, replaces that list; empty = PATH only).
    /// </summary>
    private static string? FindPostgres(IConfiguration configuration, string executable)
    {
        if (OptionalResourceChooser.FindOnPath(executable) is { } onPath && File.Exists(Path.Combine(Path.GetDirectoryName(Path.GetFullPath(onPath))!, "initdb")))
        {
            return onPath;
        }
        var directories = configuration["Postgres:SearchDirectories"] is { } configured
            ? configured.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            : Directory.Exists("/usr/lib/postgresql")
                ? Directory.GetDirectories("/usr/lib/postgresql").OrderByDescending(d => d, StringComparer.Ordinal).Select(d => Path.Combine(d, "bin")).ToArray()
                : [];
        return directories.Select(d => Path.Combine(d, executable)).FirstOrDefault(p => File.Exists(p) && File.Exists(Path.Combine(Path.GetDirectoryName(p)!, "initdb")));
    }

    /// <summary>The first run creates the cluster (<c>initdb</c>, trust on loopback for the local user only); later runs reuse it.</summary>
    private static void InitializeDataDirectory(string initdb, string dataDirectory)
    {
        if (File.Exists(Path.Combine(dataDirectory, "PG_VERSION")))
        {
            return;
        }
        var parent = Path.GetDirectoryName(Path.GetFullPath(dataDirectory))!;
        Directory.CreateDirectory(parent);
        if (IsRoot)
        {
            Run("chown", ["postgres", parent]);
        }
        var (command, args) = AsPostgresUser(initdb, ["-D", dataDirectory, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-instructions"]);
        Run(command, args);
    }

    private static (string Command, string[] Arguments) AsPostgresUser(string executable, string[] arguments) =>
        IsRoot ? ("runuser", ["-u", "postgres", "--", executable, .. arguments]) : (executable, arguments);

    private static void Run(string command, string[] arguments)
    {
        var start = new ProcessStartInfo(command, arguments) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)) || process.ExitCode != 0)
        {
            throw new DistributedApplicationException($"{command} {string.Join(' ', arguments)} failed: {output.Result}{error.Result}");
        }
    }

    /// <summary>Healthy when the local server accepts a connection and answers a query.</summary>
    private sealed class PostgresReadyHealthCheck(string connectionString) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            try
            {
                await using var connection = new Npgsql.NpgsqlConnection(connectionString + ";Pooling=false;Timeout=3");
                await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
                return HealthCheckResult.Healthy();
            }
            catch (Exception ex) when (ex is Npgsql.NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
            {
                return HealthCheckResult.Unhealthy(ex.Message);
            }
        }
    }
}
