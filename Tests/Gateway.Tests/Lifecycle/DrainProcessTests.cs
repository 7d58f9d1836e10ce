using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using Gateway.Auth;
using Gateway.Tests.Functional;

namespace Gateway.Tests.Lifecycle;

/// <summary>
/// SIGTERM to a real gateway process (as Kubernetes sends it on a rolling update) during a
/// 40-token stream at 100 ms per token: the stream finishes, new requests are refused with 503 +
/// Retry-After once the accept window is over, and the process exits.
/// </summary>
public sealed class DrainProcessTests
{
    private const string Key = "sk-test-drain";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);
    private static readonly int TokenId = RestStreamingTests.Gpt2.Encode(" a").Single();

    [Fact]
    public async Task Sigterm_DuringA40TokenStream_StreamEndsWithAll40AndDone_RefusalPhaseGets503WithRetryAfter_ProcessExits()
    {
        await using var triton = await ScriptedTriton.StartAsync(async call =>
        {
            var count = (int)call.InputIds("request_output_len")[0];
            for (var i = 0; i < count; i++)
            {
                await call.SendTokensAsync([TokenId]);
                if (count > 1)
                {
                    await Task.Delay(100, call.Aborted); // the engine's pace: 100 ms per token
                }
            }
            await call.SendEmptyFinalAsync();
        });
        var (rest, grpc) = (FreePort(), FreePort());
        var output = new StringBuilder();
        using var process = StartGateway(triton.Address, rest, grpc, output);
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{rest}"), Timeout = Wait };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);
            await WaitUntilAsync(async () => (await http.GetAsync("/health")).StatusCode == HttpStatusCode.OK, process, output);

            using var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Body(40, stream: true) },
                HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var sse = new SseReader(await response.Content.ReadAsStreamAsync());
            var events = new List<string> { (await sse.NextAsync().WaitAsync(Wait))!, (await sse.NextAsync().WaitAsync(Wait))! };

            Assert.Equal(0, Kill(process.Id, Signal: 15)); // SIGTERM

            // Readiness goes false at once; requests are still served during the accept window, then refused.
            await WaitUntilAsync(async () => (await http.GetAsync("/health")).StatusCode == HttpStatusCode.ServiceUnavailable, process, output);
            HttpResponseMessage? refused = null;
            var served = 0;
            await WaitUntilAsync(async () =>
            {
                var probe = await http.PostAsync("/v1/completions", Body(1, stream: false));
                if (probe.StatusCode == HttpStatusCode.OK)
                {
                    served++;
                    probe.Dispose();
                    return false;
                }
                refused = probe;
                return true;
            }, process, output);
            using (refused)
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refused!.StatusCode);
                Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter?.Delta);
                var error = Json.Parse(await refused.Content.ReadAsStringAsync()).GetProperty("error");
                Assert.Equal("server_shutting_down", error.GetProperty("type").GetString());
            }
            Assert.True(served > 0, "no request was served in the accept window");

            events.AddRange(await sse.ReadAllAsync().WaitAsync(Wait));
            Assert.Equal("[DONE]", events[^1]);
            var text = new StringBuilder();
            string? finish = null;
            foreach (var data in events[..^1])
            {
                var choice = Json.Parse(data).GetProperty("choices")[0];
                text.Append(choice.GetProperty("text").GetString());
                if (choice.TryGetProperty("finish_reason", out var reason) && reason.ValueKind == System.Text.Json.JsonValueKind.String)
                {
                    finish = reason.GetString();
                }
            }
            Assert.Equal(string.Concat(Enumerable.Repeat(" a", 40)), text.ToString());
            Assert.Equal("length", finish);

            Assert.True(await WaitForExitAsync(process), "the gateway did not exit after draining:\n" + Snapshot(output));
            Assert.Equal(0, process.ExitCode);
            Assert.Contains("Drained", Snapshot(output));
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    private static StringContent Body(int maxTokens, bool stream) => new(
        $$"""{"model":"gpt-j-6b","prompt":"Once","max_tokens":{{maxTokens}},"stream":{{(stream ? "true" : "false")}}}""", Encoding.UTF8, "application/json");

    private static Process StartGateway(Uri triton, int rest, int grpc, StringBuilder output)
    {
        var gatewayDll = Path.Combine(AppContext.BaseDirectory, "Gateway.dll");
        var start = new ProcessStartInfo(Environment.ProcessPath!.EndsWith("dotnet", StringComparison.Ordinal) ? Environment.ProcessPath : "dotnet",
        [
            gatewayDll,
            $"--Gateway:RestPort={rest}", $"--Gateway:GrpcPort={grpc}", "--Gateway:ListenOnLoopbackOnly=true",
            $"--Gateway:Triton:Endpoints:0={triton}",
            $"--Gateway:ApiKeys:drain:Sha256={ApiKeyHash.ToHex(Key)}", "--Gateway:ApiKeys:drain:Tenant=drain", "--Gateway:ApiKeys:drain:AllowedModels:0=*",
            "--Gateway:Shutdown:AcceptWindow=00:00:01", "--Gateway:Shutdown:DrainTimeout=00:00:25",
            "--Logging:LogLevel:Default=Information",
        ])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        start.Environment.Remove("OTEL_EXPORTER_OTLP_ENDPOINT");
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Polls another process's state (there is no event to wait on across processes), bounded.</summary>
    private static async Task WaitUntilAsync(Func<Task<bool>> condition, Process process, StringBuilder output)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < Wait)
        {
            Assert.False(process.HasExited, "the gateway exited early:\n" + Snapshot(output));
            try
            {
                if (await condition())
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
            }
            await Task.Delay(50);
        }
        Assert.Fail("condition not met within " + Wait + ":\n" + Snapshot(output));
    }

    private static async Task<bool> WaitForExitAsync(Process process)
    {
        using var cts = new CancellationTokenSource(Wait);
        try
        {
            await process.WaitForExitAsync(cts.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private static string Snapshot(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int Signal);
}
