using System.Diagnostics;
using LLama;
using LLama.Native;
using TritonEmulator.Gguf;
using TritonEmulator.Models.Vllm;

namespace Benchmarks.Llama;

/// <summary>
/// A temporary Triton model repository holding one <c>backend: "vllm"</c> model with a given llama
/// shape: seeded random weights written as an F16 GGUF, quantized to Q4_K_M by llama.cpp
/// (<see cref="LLamaQuantizer"/>), the F16 file then deleted. Speed depends on the shape and the
/// quantization, not on the weight values, so this measures what a real model of that shape costs;
/// its text is gibberish. Deleted on dispose.
/// </summary>
internal sealed class LlamaShapeRepository : IDisposable
{
    public const string ModelName = "tinyllama_shape";
    public const string ChatTemplate = "zephyr";

    /// <summary>Matrix elements uniform in ±this (standard deviation 0.02, a usual initialisation): activations stay finite through 22 layers.</summary>
    private const float WeightScale = 0.0346f;

    private LlamaShapeRepository(string root) => Root = root;

    /// <summary>The temporary folder: <c>repository/</c> is the model repository.</summary>
    public string Root { get; }

    public string Repository => Path.Combine(Root, "repository");

    public required LlamaShape Shape { get; init; }
    public required long F16Bytes { get; init; }
    public required long QuantizedBytes { get; init; }
    public required TimeSpan WriteTime { get; init; }
    public required TimeSpan QuantizeTime { get; init; }

    /// <summary>Writes and quantizes the model (minutes for 1.1B parameters on 2 cores) and the repository around it.</summary>
    public static LlamaShapeRepository Create(LlamaShape shape, int emulatorThreads, int maxContexts, TextWriter log)
    {
        var vocabulary = SentencePieceVocabulary.Synthetic(shape.Vocab);
        var writer = LlamaGguf.Create("llama-shape-random", shape, vocabulary, GgmlType.F16,
            LlamaGguf.RandomWeights(shape, seed: 1, WeightScale, silentToken: vocabulary.Eos));
        var root = Directory.CreateTempSubdirectory("llm-gateway-bench-llama-").FullName;
        try
        {
            // F16 and Q4_K_M (about 0.3 × F16) exist together until the F16 file is deleted.
            var needed = writer.DataBytes * 3 / 2 + (256L << 20);
            var free = new DriveInfo(root).AvailableFreeSpace;
            if (free < needed)
            {
                throw new IOException($"the llama scenario needs {needed / (1L << 20)} MiB free under {root}, there are {free / (1L << 20)} MiB");
            }
            var f16 = Path.Combine(root, "model-f16.gguf");
            log.WriteLine($"llama: writing {shape.ParameterCount:N0} parameters as F16 to {f16} ...");
            var started = Stopwatch.GetTimestamp();
            writer.WriteTo(f16);
            var written = Stopwatch.GetElapsedTime(started);
            var f16Bytes = new FileInfo(f16).Length;

            var version = Directory.CreateDirectory(Path.Combine(root, "repository", ModelName, "1")).FullName;
            var quantized = Path.Combine(version, "model.gguf");
            log.WriteLine($"llama: wrote {f16Bytes / 1048576.0:0} MiB in {written.TotalSeconds:0.0} s; quantizing to Q4_K_M ...");
            // llama.cpp is configured once per process, before its first use (in-process runs serve it next);
            // the quantizer does not load the native library itself.
            LlamaNative.EnsureLoaded();
            started = Stopwatch.GetTimestamp();
            if (!LLamaQuantizer.Quantize(f16, quantized, LLamaFtype.MOSTLY_Q4_K_M, nthread: Environment.ProcessorCount))
            {
                throw new InvalidOperationException($"llama.cpp could not quantize {f16} to Q4_K_M");
            }
            var quantizeTime = Stopwatch.GetElapsedTime(started);
            File.Delete(f16);
            var quantizedBytes = new FileInfo(quantized).Length;
            log.WriteLine($"llama: Q4_K_M {quantizedBytes / 1048576.0:0} MiB in {quantizeTime.TotalSeconds:0.0} s");

            File.WriteAllText(Path.Combine(version, "model.json"), $$"""{"model": "model.gguf", "max_model_len": {{shape.Context}}}""");
            File.WriteAllText(Path.Combine(root, "repository", ModelName, "config.pbtxt"), $$"""
                backend: "vllm"
                instance_group [ { count: 1, kind: KIND_MODEL } ]
                parameters { key: "emulator_max_contexts" value { string_value: "{{maxContexts}}" } }
                parameters { key: "emulator_threads" value { string_value: "{{emulatorThreads}}" } }
                # read by the gateway's model discovery, as for a user-supplied TinyLlama (TritonEmulator/README.md)
                parameters { key: "chat_template" value { string_value: "{{ChatTemplate}}" } }
                parameters { key: "max_model_len" value { string_value: "{{shape.Context}}" } }
                """);
            return new LlamaShapeRepository(root)
            {
                Shape = shape,
                F16Bytes = f16Bytes,
                QuantizedBytes = quantizedBytes,
                WriteTime = written,
                QuantizeTime = quantizeTime,
            };
        }
        catch
        {
            Directory.Delete(root, recursive: true);
            throw;
        }
    }

    /// <summary>
    /// Writes the TinyLlama-1.1B-shaped model into <paramref name="models"/> as its own folder (config,
    /// <c>1/model.json</c>, <c>1/model.gguf</c>), as a user places a downloaded GGUF: a realistically
    /// sized model for trying the local chat path (speed, memory, discovery); its text is gibberish.
    /// </summary>
    public static void WriteModelFolder(string models, int emulatorThreads, TextWriter log)
    {
        var target = Path.Combine(Path.GetFullPath(models), ModelName);
        if (Directory.Exists(target))
        {
            throw new IOException($"{target} exists already");
        }
        using var repository = Create(LlamaShape.TinyLlama1B, emulatorThreads, maxContexts: 2, log);
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        CopyDirectory(Path.Combine(repository.Repository, ModelName), target);
        log.WriteLine($"llama: wrote {target} (model '{ModelName}', random weights: speed and memory only)");
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }
        foreach (var directory in Directory.GetDirectories(from))
        {
            CopyDirectory(directory, Path.Combine(to, Path.GetFileName(directory)));
        }
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // a temp folder: best effort
        }
    }
}
