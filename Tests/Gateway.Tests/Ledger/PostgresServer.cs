using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Gateway.Tests.Ledger;

/// <summary>
/// A real PostgreSQL (the local <c>initdb</c>/<c>postgres</c>/<c>pg_ctl</c>, Debian's postgresql
/// package, installed by test.sh) in a temporary data directory on a free loopback port, started
/// for a test class and removed at its end. Run as root, it runs as the <c>postgres</c> user
/// (PostgreSQL refuses root). <see cref="StopAsync"/> and <see cref="StartAsync"/> stop and restart
/// it on the same data, for outage tests.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "gateway-pg-" + Guid.NewGuid().ToString("N")[..12]);
    private Process? _process;
    private int _databases;

    public int Port { get; private set; }

    private string DataDirectory => Path.Combine(_root, "data");

    /// <summary>The server's <c>postgres</c> database.</summary>
    public string ConnectionString => Connection("postgres");

    public string Connection(string database) => $"Host=127.0.0.1;Port={Port};Username=postgres;Database={database};Timeout=5";

    public static string? FindBinary(string name)
    {
        var versioned = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").OrderByDescending(d => d, StringComparer.Ordinal).Select(d => Path.Combine(d, "bin", name)).FirstOrDefault(File.Exists)
            : null;
        return versioned ?? (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
    }

    private static bool IsRoot => Environment.UserName == "root";

    public async Task InitializeAsync()
    {
        Port = FreePort();
        Directory.CreateDirectory(_root);
        if (IsRoot)
        {
            await RunAsync("chown", ["postgres", _root], asPostgres: false);
        }
        await RunAsync(FindBinary("initdb") ?? throw new InvalidOperationException("initdb is not installed: run test.sh (apt-get install postgresql)."),
            ["-D", DataDirectory, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"], asPostgres: true);
        await StartAsync();
    }

    /// <summary>A fresh, empty database on this server.</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        var name = $"test_{Interlocked.Increment(ref _databases)}_{Guid.NewGuid():N}"[..24];
        await using var connection = new NpgsqlConnection(ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
        await command.ExecuteNonQueryAsync();
        return Connection(name);
    }

    /// <summary>Starts the server (again) and waits until it answers a query.</summary>
    public async Task StartAsync()
    {
        var postgres = FindBinary("postgres") ?? throw new InvalidOperationException("postgres is not installed: run test.sh (apt-get install postgresql).");
        string[] arguments = ["-D", DataDirectory, "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-k", _root,
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200"];
        _process = Process.Start(StartInfo(postgres, arguments, asPostgres: true))!;
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (true)
        {
            try
            {
                await using var connection = new NpgsqlConnection(ConnectionString + ";Pooling=false");
                await connection.OpenAsync();
                return;
            }
            catch (Exception ex) when (ex is NpgsqlException or SocketException && DateTime.UtcNow < deadline && !_process.HasExited)
            {
                await Task.Delay(100);
            }
        }
    }

    /// <summary>Stops the server at once (connections dropped) and waits until it has exited.</summary>
    public async Task StopAsync()
    {
        if (_process is { HasExited: false } process)
        {
            await RunAsync(FindBinary("pg_ctl")!, ["-D", DataDirectory, "stop", "-m", "immediate", "-w"], asPostgres: true, check: false);
            if (!process.WaitForExit(TimeSpan.FromSeconds(20)))
            {
                process.Kill(entireProcessTree: true);
            }
            await process.WaitForExitAsync();
        }
        _process?.Dispose();
        _process = null;
        NpgsqlConnection.ClearAllPools();
    }

    public async Task DisposeAsync()
    {
        await StopAsync();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static ProcessStartInfo StartInfo(string file, IEnumerable<string> arguments, bool asPostgres)
    {
        var start = new ProcessStartInfo(asPostgres && IsRoot ? "runuser" : file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (asPostgres && IsRoot)
        {
            foreach (var argument in new[] { "-u", "postgres", "--", file })
            {
                start.ArgumentList.Add(argument);
            }
        }
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        return start;
    }

    private static async Task RunAsync(string file, IEnumerable<string> arguments, bool asPostgres, bool check = true)
    {
        using var process = Process.Start(StartInfo(file, arguments, asPostgres))!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
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
