using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Benchmarks.Faults;

/// <summary>A real <c>redis-server</c> (no persistence) on a fixed free loopback port, so it can be killed and started again there.</summary>
internal sealed class RedisProcess : IAsyncDisposable
{
    private Process? _process;

    private RedisProcess(string executable, int port)
    {
        Executable = executable;
        Port = port;
    }

    public string Executable { get; }

    public int Port { get; }

    public string ConnectionString => string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{Port},abortConnect=false");

    /// <summary>The installed server, or null when there is none (the scenario then skips the Redis fault).</summary>
    public static RedisProcess? Find() =>
        new[] { "/usr/bin/redis-server", "/usr/local/bin/redis-server" }.FirstOrDefault(File.Exists) is { } path ? new RedisProcess(path, FreePort()) : null;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(Executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { "--port", Port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no" })
        {
            start.ArgumentList.Add(argument);
        }
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _process = new Process { StartInfo = start, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data?.Contains("Ready to accept connections", StringComparison.Ordinal) == true)
            {
                ready.TrySetResult();
            }
        };
        _process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException("redis-server exited before it was ready"));
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        await ready.Task.WaitAsync(TimeSpan.FromSeconds(20), cancellationToken);
    }

    /// <summary>SIGKILL, as a crashed or evicted Redis pod.</summary>
    public async Task KillAsync(CancellationToken cancellationToken)
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill();
            await process.WaitForExitAsync(cancellationToken);
        }
        _process?.Dispose();
        _process = null;
    }

    public ValueTask DisposeAsync() => new(KillAsync(CancellationToken.None));

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
