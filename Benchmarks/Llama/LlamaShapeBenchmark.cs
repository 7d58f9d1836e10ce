using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Benchmarks.Hosting;
using Benchmarks.Load;
using Benchmarks.Report;
using TritonEmulator.Gguf;

namespace Benchmarks.Llama;

/// <summary>
/// The <c>llama</c> scenario: real llama.cpp speed of a model with TinyLlama-1.1B-Chat-v1.0's exact
/// architecture (random weights, Q4_K_M), served by the emulator as a <c>backend: "vllm"</c> model and
/// through the gateway's <c>/v1/chat/completions</c> (SSE), with the emulator's gRPC
/// <c>ModelStreamInfer</c> as the direct baseline: prompt processing (TTFT of a ~200-token prompt),
/// decode speed of one stream, and two streams at once on the model's two sequences (decoded in one batch per step).
/// </summary>
internal static class LlamaShapeBenchmark
{
    /// <summary>The public model id, as model discovery names a Triton model (here configured the same way).</summary>
    public const string PublicModel = "tinyllama-shape";

    private const int MaxContexts = 2;

    /// <summary>For <c>--smoke</c>: a llama model of a few MB whose rows are still multiples of 256 (k-quants).</summary>
    private static readonly LlamaShape SmokeShape = new(Vocab: 2000, Dim: 256, Layers: 2, Heads: 4, KvHeads: 2, Ffn: 512, Context: 512);

    public static async Task RunAsync(BenchmarkOptions options, BenchmarkReport report, TextWriter log, CancellationToken cancellationToken)
    {
        var shape = options.Smoke ? SmokeShape : LlamaShape.TinyLlama1B;
        using var repository = LlamaShapeRepository.Create(shape, options.LlamaThreads, MaxContexts, log);
        var loading = Stopwatch.GetTimestamp();
        await using var emulator = await ComponentHost.StartAsync("emulator", ComponentHost.EmulatorSettings(repository.Repository), options.InProcess, cancellationToken);
        using var http = LoadClient.CreateHttpClient();
        await WaitForModelAsync(http, emulator.Rest, cancellationToken);
        var loadTime = Stopwatch.GetElapsedTime(loading);
        await using var gateway = await ComponentHost.StartAsync("gateway", GatewaySettings(emulator.Grpc, shape), options.InProcess, cancellationToken);
        using var unusedFasterTransformer = new DirectGrpcClient(emulator.Grpc);
        var client = new LoadClient(http, gateway.Rest, unusedFasterTransformer, ComponentHost.ApiKey);
        using var direct = new DirectVllmClient(emulator.Grpc);
        log.WriteLine($"llama: emulator {emulator.Rest} (model ready after {loadTime.TotalSeconds:0.0} s) gateway {gateway.Rest}; {Machine.Describe()}");

        var prompt = Prompt(options.LlamaPromptWords);
        Task<(RequestResult Result, int PromptTokens)> StreamAsync(Target target, int maxTokens, List<double> interTokenMs) => target == Target.Gateway
            ? client.StreamChatAsync(PublicModel, prompt, maxTokens, interTokenMs, cancellationToken)
            : direct.StreamAsync(LlamaShapeRepository.ModelName, LlamaShapeRepository.ChatTemplate, prompt, maxTokens, interTokenMs, cancellationToken);

        // Warm-up on both paths: JIT, connections, and both sequences of the llama.cpp context used once.
        foreach (var target in new[] { Target.Direct, Target.Gateway })
        {
            await Task.WhenAll(Enumerable.Range(0, MaxContexts).Select(_ => StreamAsync(target, 2, [])));
        }

        var measured = new List<Measurement>();
        foreach (var streams in new[] { 1, MaxContexts })
        {
            foreach (var target in new[] { Target.Direct, Target.Gateway })
            {
                var samples = new StreamSamples();
                var promptTokens = new ConcurrentBag<int>();
                var started = Stopwatch.GetTimestamp();
                for (var run = 0; run < options.LlamaRepeats; run++)
                {
                    await Task.WhenAll(Enumerable.Range(0, streams).Select(async _ =>
                    {
                        var interToken = new List<double>(1);
                        var (result, prompted) = await StreamAsync(target, options.LlamaTokens, interToken);
                        samples.Record(result, interToken);
                        promptTokens.Add(prompted);
                    }));
                }
                var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
                var server = target == Target.Gateway ? gateway : emulator;
                var row = new ResultRow($"llama {(options.Smoke ? "tiny" : "1.1B")} Q4_K_M, {streams} × {options.LlamaTokens} tokens", target == Target.Gateway ? "gateway" : "direct",
                    samples.Requests, samples.Errors, samples.Requests / elapsed, Percentiles.Of(samples.Ttfts), Percentiles.Of(samples.InterTokens),
                    samples.Tokens / elapsed, server.PeakRssBytes() / 1048576.0, null);
                report.Rows.Add(row);
                measured.Add(new Measurement(row, streams, Median([.. promptTokens])));
                log.WriteLine($"{TimeProvider.System.GetUtcNow():HH:mm:ss} {row}");
            }
        }
        report.Sections.Add(Section(options, repository, loadTime, measured, emulator.PeakRssBytes() / 1048576.0));
    }

    private sealed record Measurement(ResultRow Row, int Streams, int PromptTokens);

    /// <summary>The gateway with the catalogue entry its model discovery makes of the model's config (vllm contract, zephyr, context from max_model_len, half of it for output).</summary>
    private static Dictionary<string, string> GatewaySettings(Uri triton, LlamaShape shape)
    {
        var settings = ComponentHost.BaseGatewaySettings(triton);
        var key = $"Gateway:Models:{PublicModel}";
        settings[$"{key}:TritonModel"] = LlamaShapeRepository.ModelName;
        settings[$"{key}:Contract"] = "vllm";
        settings[$"{key}:ChatTemplate"] = LlamaShapeRepository.ChatTemplate;
        settings[$"{key}:ContextWindow"] = shape.Context.ToString(CultureInfo.InvariantCulture);
        settings[$"{key}:MaxOutputTokens"] = (shape.Context / 2).ToString(CultureInfo.InvariantCulture);
        return settings;
    }

    /// <summary>Waits until the emulator says the model is ready (KServe <c>/v2/models/{name}/ready</c>): llama.cpp has loaded it.</summary>
    private static async Task WaitForModelAsync(HttpClient http, Uri emulator, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(5));
        var ready = new Uri(emulator, $"/v2/models/{LlamaShapeRepository.ModelName}/ready");
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
        do
        {
            using var response = await http.GetAsync(ready, timeout.Token);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                return;
            }
        }
        while (await timer.WaitForNextTickAsync(timeout.Token));
    }

    /// <summary><paramref name="words"/> seeded random three-letter lowercase words: after a space each is one piece of the synthetic vocabulary.</summary>
    private static string Prompt(int words)
    {
        var random = new Random(11);
        var text = new StringBuilder(words * 4);
        for (var i = 0; i < words; i++)
        {
            if (i > 0)
            {
                text.Append(' ');
            }
            for (var c = 0; c < 3; c++)
            {
                text.Append((char)('a' + random.Next(26)));
            }
        }
        return text.ToString();
    }

    private static int Median(List<int> values)
    {
        if (values.Count == 0)
        {
            return 0;
        }
        values.Sort();
        return values[(values.Count - 1) / 2];
    }

    private static string Section(BenchmarkOptions options, LlamaShapeRepository repository, TimeSpan loadTime, List<Measurement> measured, double emulatorPeakRssMb)
    {
        var c = CultureInfo.InvariantCulture;
        var shape = repository.Shape;
        var md = new StringBuilder();
        md.Append(c, $"## llama: TinyLlama-1.1B-shaped Q4_K_M on llama.cpp{(options.Smoke ? " (smoke: a tiny shape, numbers meaningless)" : "")}\n\n");
        md.Append("Random weights: speed only, not quality; the text is gibberish. Speed depends on the architecture and the quantization, not on the weight values.\n\n");
        md.Append(c, $"Model: `llama`, {shape.Layers} layers × {shape.Dim} dims, {shape.Heads} heads / {shape.KvHeads} KV heads, FFN {shape.Ffn}, context {shape.Context}, ")
          .Append(c, $"vocabulary {shape.Vocab:N0} (SentencePiece-style, synthetic pieces), {shape.ParameterCount:N0} parameters; seeded random weights ")
          .Append("(the output row of `</s>` is zero, so greedy decoding never ends a stream early).  \n");
        md.Append(c, $"F16 GGUF: {repository.F16Bytes / 1048576.0:N0} MiB ({repository.F16Bytes:N0} bytes), written in {repository.WriteTime.TotalSeconds:0.0} s; ")
          .Append(c, $"quantized to Q4_K_M by llama.cpp (`LLamaQuantizer`, {Environment.ProcessorCount} threads) in {repository.QuantizeTime.TotalSeconds:0.0} s: ")
          .Append(c, $"{repository.QuantizedBytes / 1048576.0:N0} MiB ({repository.QuantizedBytes:N0} bytes). Emulator start to model ready (llama.cpp load): {loadTime.TotalSeconds:0.0} s.  \n");
        md.Append(c, $"Served as `backend: \"vllm\"` (`emulator_threads` {options.LlamaThreads}, `emulator_max_contexts` {MaxContexts}); through the gateway `/v1/chat/completions` ")
          .Append(c, $"(SSE, chat template zephyr), direct = the emulator's gRPC `ModelStreamInfer` with the same templated prompt. Greedy, `max_tokens` {options.LlamaTokens}, ")
          .Append(c, $"each measurement run {options.LlamaRepeats} time(s); a request's sequence is removed from the KV cache when it ends (no prefix cache).\n\n");
        md.Append("| Measurement | Target | Requests | Errors | prompt tokens | TTFT p50 ms | prefill tokens/s per stream | TPOT p50 ms | decode tokens/s per stream | decode tokens/s all streams | tokens/s incl. prefill | peak RSS MB |\n");
        md.Append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        foreach (var (row, streams, promptTokens) in measured)
        {
            var decode = row.InterToken.P50 > 0 ? 1000 / row.InterToken.P50 : 0;
            var prefill = row.Ttft.P50 > 0 ? promptTokens / (row.Ttft.P50 / 1000) : 0;
            md.Append(c, $"| {streams} stream{(streams == 1 ? "" : "s")} × {options.LlamaTokens} tokens | {row.Target} | {row.Requests} | {row.Errors} | {promptTokens} | {row.Ttft.P50:0} | {prefill:0.0} | ")
              .Append(c, $"{row.InterToken.P50:0.0} | {decode:0.0} | {decode * streams:0.0} | {row.TokensPerSecond:0.0} | {row.PeakRssMb:0} |\n");
        }
        md.Append(c, $"\nprefill tokens/s = prompt tokens ÷ TTFT p50 (with two streams both prompts go through the same steps, 64 tokens of each per step); decode tokens/s = 1000 ÷ TPOT p50; ")
          .Append("all streams = that × streams; tokens/s incl. prefill = completion tokens ÷ the measurement's wall time. ")
          .Append(c, $"RSS: gateway rows the gateway process, direct rows the emulator process (emulator peak {emulatorPeakRssMb:0} MB with the model loaded and its KV cache for both sequences).\n");
        return md.ToString();
    }
}
