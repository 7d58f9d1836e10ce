using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;

namespace Benchmarks.Peers;

/// <summary>
/// A peer proxy run as its own process tree (nginx, Portkey): started, waited for until its port
/// answers, its CPU time read from /proc for the process and every descendant, killed at the end.
/// </summary>
internal sealed class PeerProcess : IAsyncDisposable
{
    // Linux reports utime/stime in clock ticks; USER_HZ is 100 on every mainstream kernel build.
    private const double TicksPerSecond = 100;

    private readonly Process _process;
    private readonly string? _workDirectory;

    private PeerProcess(string name, Process process, Uri address, string? workDirectory)
    {
        Name = name;
        _process = process;
        Address = address;
        _workDirectory = workDirectory;
    }

    public string Name { get; }

    public Uri Address { get; }

    /// <summary>nginx (Debian <c>nginx-light</c>) as a plain reverse proxy with SSE unbuffered, or null when it is not installed.</summary>
    public static async Task<PeerProcess?> StartNginxAsync(Uri upstream, CancellationToken cancellationToken)
    {
        var nginx = new[] { "/usr/sbin/nginx", "/usr/bin/nginx" }.FirstOrDefault(File.Exists);
        if (nginx is null)
        {
            return null;
        }
        var port = FreePort();
        var dir = Directory.CreateTempSubdirectory("llm-gateway-bench-nginx-").FullName;
        Directory.CreateDirectory(Path.Combine(dir, "logs"));
        var config = Path.Combine(dir, "nginx.conf");
        await File.WriteAllTextAsync(config, $$"""
            worker_processes {{Environment.ProcessorCount}};
            pid {{dir}}/nginx.pid;
            error_log {{dir}}/logs/error.log warn;
            events { worker_connections 4096; }
            http {
              access_log off;
              client_body_temp_path {{dir}}/body;
              proxy_temp_path {{dir}}/proxy;
              upstream backend { server {{upstream.Host}}:{{upstream.Port}}; keepalive 64; }
              server {
                listen 127.0.0.1:{{port}};
                location / {
                  proxy_pass http://backend;
                  proxy_http_version 1.1;
                  proxy_set_header Connection "";
                  proxy_buffering off;
                }
              }
            }
            """, cancellationToken);
        var start = new ProcessStartInfo(nginx) { UseShellExecute = false, RedirectStandardError = true };
        foreach (var arg in new[] { "-p", dir, "-c", config, "-g", "daemon off;" })
        {
            start.ArgumentList.Add(arg);
        }
        return await StartAsync("nginx", start, port, dir, cancellationToken);
    }

    /// <summary>
    /// Portkey's AI gateway (npm <c>@portkey-ai/gateway</c>, installed once into a cache folder), or
    /// null when node/npm are missing or the install fails.
    /// </summary>
    public static async Task<PeerProcess?> StartPortkeyAsync(string version, TextWriter log, CancellationToken cancellationToken)
    {
        var cache = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "llm-gateway-bench", "portkey-" + version);
        var script = Path.Combine(cache, "node_modules", "@portkey-ai", "gateway", "build", "start-server.js");
        if (!File.Exists(script))
        {
            Directory.CreateDirectory(cache);
            log.WriteLine($"installing @portkey-ai/gateway@{version} into {cache} (npm)");
            var install = new ProcessStartInfo("npm") { UseShellExecute = false, WorkingDirectory = cache, RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var arg in new[] { "install", "--no-audit", "--no-fund", "--silent", $"@portkey-ai/gateway@{version}" })
            {
                install.ArgumentList.Add(arg);
            }
            try
            {
                using var npm = Process.Start(install)!;
                _ = npm.StandardOutput.ReadToEndAsync(cancellationToken);
                _ = npm.StandardError.ReadToEndAsync(cancellationToken);
                await npm.WaitForExitAsync(cancellationToken).WaitAsync(TimeSpan.FromMinutes(5), cancellationToken);
            }
            catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or TimeoutException)
            {
                log.WriteLine($"Portkey skipped: npm failed ({ex.Message})");
                return null;
            }
            if (!File.Exists(script))
            {
                log.WriteLine("Portkey skipped: npm install did not produce " + script);
                return null;
            }
        }
        var port = FreePort();
        var start = new ProcessStartInfo("node") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(script);
        start.ArgumentList.Add($"--port={port}");
        start.ArgumentList.Add("--headless");
        start.Environment["NODE_ENV"] = "production";
        return await StartAsync("portkey", start, port, null, cancellationToken);
    }

    private static async Task<PeerProcess?> StartAsync(string name, ProcessStartInfo start, int port, string? dir, CancellationToken cancellationToken)
    {
        var process = Process.Start(start)!;
        if (start.RedirectStandardOutput)
        {
            _ = Task.Run(async () => { while (await process.StandardOutput.ReadLineAsync() is not null) { } }, CancellationToken.None);
        }
        if (start.RedirectStandardError)
        {
            _ = Task.Run(async () => { while (await process.StandardError.ReadLineAsync() is not null) { } }, CancellationToken.None);
        }
        var peer = new PeerProcess(name, process, new Uri($"http://127.0.0.1:{port}"), dir);
        var deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency * 60;
        while (Stopwatch.GetTimestamp() < deadline && !process.HasExited)
        {
            try
            {
                using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync("127.0.0.1", port, cancellationToken);
                return peer;
            }
            catch (SocketException)
            {
                await Task.Delay(200, cancellationToken);
            }
        }
        await peer.DisposeAsync();
        return null;
    }

    /// <summary>CPU time (user + system) of the process and all its descendants so far.</summary>
    public TimeSpan Cpu() => ProcessTreeCpu(_process.Id);

    public static TimeSpan ProcessTreeCpu(int pid)
    {
        var ticks = 0L;
        var pending = new Stack<int>();
        pending.Push(pid);
        while (pending.Count > 0)
        {
            var current = pending.Pop();
            try
            {
                var stat = File.ReadAllText($"/proc/{current}/stat");
                // Fields after the ")" that closes the command name: state is field 3, utime 14, stime 15.
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                ticks += long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
                foreach (var task in Directory.EnumerateDirectories($"/proc/{current}/task"))
                {
                    var children = File.ReadAllText(Path.Combine(task, "children"));
                    foreach (var child in children.Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    {
                        pending.Push(int.Parse(child, CultureInfo.InvariantCulture));
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
            {
                // the process ended while being read
            }
        }
        return TimeSpan.FromSeconds(ticks / TicksPerSecond);
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        _process.Dispose();
        if (_workDirectory is not null)
        {
            try
            {
                Directory.Delete(_workDirectory, recursive: true);
            }
            catch (IOException)
            {
                // nginx temp files still closing: left in /tmp
            }
        }
    }
}
