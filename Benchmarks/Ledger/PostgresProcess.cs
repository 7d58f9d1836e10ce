using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Benchmarks.Ledger;

/// <summary>
/// A real PostgreSQL from the local binaries (Debian's postgresql package: initdb, postgres, pg_ctl)
/// in a temporary data directory on a free loopback port; as root it runs as the postgres user.
/// Stop and start it again on the same data for the outage phase.
/// </summary>
internal sealed class PostgresProcess : IAsyncDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("llm-gateway-bench-pg-").FullName;
    private readonly string _bin;
    private Process? _process;

    private PostgresProcess(string bin) => _bin = bin;

    /// <summary>CPU time of the postmaster and its backends so far (zero while stopped).</summary>
    public TimeSpan Cpu() => _process is { HasExited: false } process ? Peers.PeerProcess.ProcessTreeCpu(process.Id) : TimeSpan.Zero;

    public int Port { get; } = FreePort();

    public string ConnectionString => $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Timeout=5";

    private string Data => Path.Combine(_root, "data");

    private static bool IsRoot => Environment.UserName == "root";

    /// <summary>The binaries' folder, or null when PostgreSQL is not installed.</summary>
    public static PostgresProcess? Find()
    {
        var candidates = (Directory.Exists("/usr/lib/postgresql") ? Directory.GetDirectories("/usr/lib/postgresql").OrderByDescending(d => d, StringComparer.Ordinal).Select(d => Path.Combine(d, "bin")) : [])
            .Concat((Environment.GetEnvironmentVariable("PATH") ?? "").Split(':'));
        var bin = candidates.FirstOrDefault(d => File.Exists(Path.Combine(d, "initdb")) && File.Exists(Path.Combine(d, "postgres")));
        return bin is null ? null : new PostgresProcess(bin);
    }

    public async Task InitializeAsync(CancellationToken cancellationToken)
    {
        if (IsRoot)
        {
            await RunAsync("chown", ["postgres", _root], false, cancellationToken);
        }
        await RunAsync(Path.Combine(_bin, "initdb"), ["-D", Data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"], true, cancellationToken);
        await StartAsync(cancellationToken);
    }

    /// <summary>A durable server: fsync and synchronous commit stay on, as in production.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _process = Process.Start(Start(Path.Combine(_bin, "postgres"),
            ["-D", Data, "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-k", _root, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"], true))!;
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                await using var connection = new NpgsqlConnection(ConnectionString + ";Pooling=false");
                await connection.OpenAsync(cancellationToken);
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or SocketException && deadline.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(100, cancellationToken);
            }
        }
    }

    /// <summary>Immediate stop: every connection is cut, as when the database's host fails.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_process is { HasExited: false } process)
        {
            await RunAsync(Path.Combine(_bin, "pg_ctl"), ["-D", Data, "stop", "-m", "immediate", "-w"], true, cancellationToken, check: false);
            await process.WaitForExitAsync(cancellationToken).WaitAsync(TimeSpan.FromSeconds(20), cancellationToken);
        }
        _process?.Dispose();
        _process = null;
    }

    public async Task<long> ScalarAsync(string sql, CancellationToken cancellationToken)
    {
        await using var connection = new NpgsqlConnection(ConnectionString + ";Pooling=false");
        await connection.OpenAsync(cancellationToken);
        await using var command = new NpgsqlCommand(sql, connection);
        return Convert.ToInt64(await command.ExecuteScalarAsync(cancellationToken), System.Globalization.CultureInfo.InvariantCulture);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None);
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static ProcessStartInfo Start(string file, string[] arguments, bool asPostgres)
    {
        var start = new ProcessStartInfo(asPostgres && IsRoot ? "runuser" : file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in asPostgres && IsRoot ? ["-u", "postgres", "--", file, .. arguments] : arguments)
        {
            start.ArgumentList.Add(argument);
        }
        return start;
    }

    private static async Task RunAsync(string file, string[] arguments, bool asPostgres, CancellationToken cancellationToken, bool check = true)
    {
        using var process = Process.Start(Start(file, arguments, asPostgres))!;
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var error = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        if (check && process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} exited with {process.ExitCode}: {await output}{await error}");
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
