using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using Aspire.Hosting;

namespace AppHost.Tests.Resources;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FirstRunCollection
{
    public const string Name = "FirstRun";
}

/// <summary>
/// The README's first command on a machine with a <c>docker</c> CLI whose engine is down and no
/// <c>redis-server</c> nor PostgreSQL: the real AppHost process, on a PATH that is this machine's without
/// redis-server and with a failing docker, must bring the gateway up on :5080.
/// </summary>
[Collection(FirstRunCollection.Name)]
public sealed class FirstRunTests
{
    [Fact]
    public async Task DockerCliWithoutEngine_AndNoRedisServer_GatewayAnswersWithin60s_AndTheLogSaysEmbedded()
    {
        var shadow = Directory.CreateTempSubdirectory("apphost-path-");
        var log = new StringBuilder();
        Process? process = null;
        try
        {
            ShadowPath(shadow.FullName);
            FakeDocker.Write(shadow.FullName);
            var root = RepositoryRoot();
            var configuration = AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";
            var appHost = Path.Combine(root, "AppHost", "bin", configuration, "net10.0", "AppHost.dll");
            var start = new ProcessStartInfo(Path.Combine(shadow.FullName, "dotnet"), [appHost, "--Triton:Profile=zero-latency", "--Triton:Replicas=1",
                "--Postgres:SearchDirectories=", $"--Postgres:StateDirectory={shadow.FullName}"])
            {
                WorkingDirectory = Path.Combine(root, "AppHost"),
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            start.Environment["PATH"] = shadow.FullName;
            // What the AppHost's launch profile sets (dotnet run applies it; a plain dotnet AppHost.dll does not).
            start.Environment["ASPNETCORE_ENVIRONMENT"] = "Development";
            start.Environment["DOTNET_ENVIRONMENT"] = "Development";
            start.Environment["ASPNETCORE_URLS"] = "http://localhost:18888";
            start.Environment["ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL"] = "http://localhost:18889";
            start.Environment["ASPIRE_ALLOW_UNSECURED_TRANSPORT"] = "true";
            start.Environment["ASPIRE_DASHBOARD_UNSECURED_ALLOW_ANONYMOUS"] = "true";
            start.Environment.Remove("ASPIRE_CONTAINER_RUNTIME");
            process = Process.Start(start)!;
            process.OutputDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
            process.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();

            using var http = new HttpClient { BaseAddress = new Uri("http://127.0.0.1:5080"), Timeout = TimeSpan.FromSeconds(5) };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", GatewayResourceExtensions.DevApiKey);
            var deadline = Stopwatch.StartNew();
            HttpResponseMessage? models = null;
            while (deadline.Elapsed < TimeSpan.FromSeconds(60) && !process.HasExited)
            {
                try
                {
                    models = await http.GetAsync("/v1/models");
                    if (models.IsSuccessStatusCode)
                    {
                        break;
                    }
                }
                catch (HttpRequestException)
                {
                }
                catch (TaskCanceledException)
                {
                }
                await Task.Delay(500); // polling a port another process opens: there is no event to wait on
            }
            string text;
            lock (log)
            {
                text = log.ToString();
            }
            Assert.True(models?.IsSuccessStatusCode == true, $"the gateway did not answer on :5080 within 60 s. AppHost log:\n{text}");
            Assert.Contains("gpt-j-6b", await models!.Content.ReadAsStringAsync());
            Assert.Contains("redis: Embedded chosen", text);
            Assert.Contains("postgres: Embedded chosen", text);
            Assert.Contains("'docker info' exited with 1", text);
        }
        finally
        {
            if (process is not null)
            {
                if (!process.HasExited)
                {
                    _ = Process.Start("kill", ["-INT", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
                    if (!process.WaitForExit(TimeSpan.FromSeconds(45)))
                    {
                        process.Kill(entireProcessTree: true);
                    }
                }
                process.Dispose();
            }
            shadow.Delete(recursive: true);
        }
    }

    /// <summary>Links every executable of this machine's PATH into <paramref name="directory"/>, less redis-server and container CLIs.</summary>
    private static void ShadowPath(string directory)
    {
        string[] hidden = ["redis-server", "docker", "podman", "postgres", "initdb", "pg_ctl"];
        foreach (var source in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            if (!Directory.Exists(source))
            {
                continue;
            }
            foreach (var file in Directory.EnumerateFiles(source))
            {
                var name = Path.GetFileName(file);
                var link = Path.Combine(directory, name);
                if (!hidden.Contains(name) && !File.Exists(link))
                {
                    File.CreateSymbolicLink(link, file);
                }
            }
        }
    }

    private static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Aspire.sln")))
        {
            directory = directory.Parent;
        }
        return directory?.FullName ?? throw new InvalidOperationException("Aspire.sln not found above " + AppContext.BaseDirectory);
    }
}
