using System.Globalization;
using System.Text;
using Benchmarks.Hosting;
using Benchmarks.Load;
using Benchmarks.Report;
using TritonEmulator.Gguf;

namespace Benchmarks.Llama;

/// <summary>
/// The <c>grammar</c> scenario: what structured outputs cost per token on llama.cpp. The
/// TinyLlama-1.1B-shaped Q4_K_M model (32,000-token vocabulary) is served as a <c>backend: "vllm"</c>
/// model and asked directly over gRPC (no gateway), greedy, with and without a <c>structured_outputs</c>
/// grammar in the sampling chain; decode time per token (TPOT) is compared. With every grammar the
/// sampler runs llama.cpp's grammar over the whole vocabulary at every token.
/// </summary>
internal static class GrammarBenchmark
{
    public const string Name = "grammar";

    private static readonly LlamaShape SmokeShape = new(Vocab: 2000, Dim: 256, Layers: 2, Heads: 4, KvHeads: 2, Ffn: 512, Context: 512);

    /// <summary>The guides compared: name, structured_outputs JSON (null = free text).</summary>
    private static readonly (string Name, string? Guide)[] Guides =
    [
        ("free text (no grammar)", null),
        ("json_object", """{"json_object": true, "disable_any_whitespace": true}"""),
        ("json_schema (array of {name, n} objects)", """{"json": {"type":"object","properties":{"items":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string","maxLength":24},"n":{"type":"integer","minimum":0,"maximum":100000}},"required":["name","n"],"additionalProperties":false}}},"required":["items"],"additionalProperties":false}, "disable_any_whitespace": true}"""),
        ("regex [a-z ]*", """{"regex": "[a-z ]*"}"""),
    ];

    public static async Task<string> RunAsync(BenchmarkOptions options, TextWriter log, CancellationToken cancellationToken)
    {
        var shape = options.Smoke ? SmokeShape : LlamaShape.TinyLlama1B;
        using var repository = LlamaShapeRepository.Create(shape, options.LlamaThreads, 1, log);
        await using var emulator = await ComponentHost.StartAsync("emulator", ComponentHost.EmulatorSettings(repository.Repository), options.InProcess, cancellationToken);
        using var direct = new DirectVllmClient(emulator.Grpc);
        const string prompt = "Write the inventory as JSON.";
        // Warm-up, and the model ready (the first request waits for the load).
        await WarmAsync(direct, cancellationToken);

        // Interleaved (every guide once per round), so a change in machine load hits every row alike.
        var loadBefore = Machine.LoadAverage();
        var tpots = Guides.Select(static _ => new List<double>()).ToArray();
        var tokens = new int[Guides.Length];
        for (var run = 0; run < options.LlamaRepeats; run++)
        {
            for (var g = 0; g < Guides.Length; g++)
            {
                var interToken = new List<double>(1);
                var (result, _) = await direct.StreamAsync(LlamaShapeRepository.ModelName, LlamaShapeRepository.ChatTemplate, prompt, options.LlamaTokens, interToken, cancellationToken, Guides[g].Guide);
                tokens[g] += result.Tokens;
                tpots[g].AddRange(interToken);
            }
        }
        var rows = new List<(string Name, double TpotMs, double Tokens, int Requests)>();
        for (var g = 0; g < Guides.Length; g++)
        {
            tpots[g].Sort();
            var median = tpots[g].Count == 0 ? 0 : tpots[g][(tpots[g].Count - 1) / 2];
            rows.Add((Guides[g].Name, median, tokens[g] / (double)options.LlamaRepeats, options.LlamaRepeats));
            log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{TimeProvider.System.GetUtcNow():HH:mm:ss} grammar: {Guides[g].Name}: TPOT p50 {median:0.00} ms, {tokens[g] / (double)options.LlamaRepeats:0} tokens per request"));
        }
        var loadAfter = Machine.LoadAverage();

        var c = CultureInfo.InvariantCulture;
        var md = new StringBuilder();
        md.Append(c, $"## grammar: structured-output decoding cost on llama.cpp{(options.Smoke ? " (smoke: a tiny shape, numbers meaningless)" : "")}\n\n");
        md.Append(c, $"`dotnet run -c Release --project Benchmarks -- --scenarios grammar` on {Machine.Describe()}. ")
          .Append(c, $"Model: {shape.Layers} layers × {shape.Dim} dims, vocabulary {shape.Vocab:N0}, Q4_K_M, random weights (the llama scenario's model); ")
          .Append(c, $"served as `backend: \"vllm\"` (`emulator_threads` {options.LlamaThreads}, one context) and asked directly over gRPC `ModelStreamInfer`, greedy, ")
          .Append(c, $"`max_tokens` {options.LlamaTokens}, {options.LlamaRepeats} request(s) per row, with the `structured_outputs` shown (GBNF through llama.cpp's grammar sampler: each drawn token checked, the whole vocabulary filtered only when it is rejected). ")
          .Append("Rows are interleaved (each guide once per round). TPOT = (last − first streamed token) ÷ (tokens − 1) per request, median over requests; a guided answer may end before `max_tokens` when its JSON is complete. ")
          .Append(c, $"Load average before / after: {loadBefore} / {loadAfter}.\n\n");
        md.Append("| Guide | requests | tokens per request | TPOT p50 ms | decode tokens/s | vs free text |\n|---|---:|---:|---:|---:|---:|\n");
        var baseline = rows[0].TpotMs;
        foreach (var (name, tpot, perRequest, requests) in rows)
        {
            var slowdown = baseline > 0 ? (tpot / baseline - 1) * 100 : 0;
            md.Append(c, $"| {name} | {requests} | {perRequest:0} | {tpot:0.00} | {(tpot > 0 ? 1000 / tpot : 0):0.0} | {(name == rows[0].Name ? "—" : $"{slowdown:+0.0;-0.0} %")} |\n");
        }
        return md.ToString();
    }

    private static async Task WarmAsync(DirectVllmClient direct, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromMinutes(5));
        while (true)
        {
            var (result, _) = await direct.StreamAsync(LlamaShapeRepository.ModelName, LlamaShapeRepository.ChatTemplate, "hi", 2, [], timeout.Token);
            if (result.Ok)
            {
                foreach (var (_, guide) in Guides)
                {
                    await direct.StreamAsync(LlamaShapeRepository.ModelName, LlamaShapeRepository.ChatTemplate, "hi", 2, [], timeout.Token, guide);
                }
                return;
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200), timeout.Token);
        }
    }
}
