using System.Globalization;
using System.Text.Json;
using LLama.Exceptions;
using Microsoft.Extensions.Logging;
using Triton.Inference;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models.Vllm;

/// <summary>
/// Loads <c>backend: "vllm"</c> models: the engine arguments in the version folder's
/// <c>model.json</c> name a GGUF file (<c>"model"</c>, relative to the version folder or absolute;
/// without it the folder's only <c>.gguf</c>), and <c>"max_model_len"</c> sets the context size.
/// Config parameters: <c>emulator_max_contexts</c> (requests generating at once, default 2, at most 256; more
/// queue under the model's queue policy) and <c>emulator_threads</c> (llama.cpp threads).
/// Anything wrong becomes a <see cref="ModelLoadException"/>, so the model is UNAVAILABLE with that reason.
/// </summary>
internal sealed partial class VllmModelLoader(ILoggerFactory loggerFactory, TritonEmulator.Metrics.TritonMetrics? metrics = null)
{
    public const string EngineArgsFile = "model.json";

    /// <summary>Context size when neither model.json nor a smaller trained context says otherwise (keeps KV memory modest).</summary>
    public const int DefaultContextCap = 4096;

    /// <summary>llama.cpp's limit on sequences in one context (<c>LLAMA_MAX_SEQ</c>): one per request generating at once.</summary>
    public const int MaxSequences = 256;

    private readonly ILogger _logger = loggerFactory.CreateLogger<VllmModelLoader>();

    /// <summary>Where a request's seed comes from when it sets none (tests may fix it).</summary>
    public Func<ulong> Seeds { get; init; } = static () => (ulong)Random.Shared.NextInt64();

    public VllmModel Load(ModelDefinition definition, ModelConfig config)
    {
        var completed = VllmModel.AutoComplete(config);
        var maxContexts = PositiveParameter(config, VllmModel.MaxContextsParameter) ?? VllmModel.DefaultMaxContexts;
        if (maxContexts > MaxSequences)
        {
            throw new ModelLoadException(
                $"parameter '{VllmModel.MaxContextsParameter}' must be at most {MaxSequences} (llama.cpp's sequences per context), got {maxContexts}");
        }
        var threads = PositiveParameter(config, VllmModel.ThreadsParameter);
        if (definition.Directory is null)
        {
            throw new ModelLoadException($"'{EngineArgsFile}' containing vllm engine args must be provided in the model's version folder, but the model has no folder");
        }
        var version = definition.Versions.Count == 0 ? 1 : definition.Versions[^1];
        var versionDirectory = Path.Combine(definition.Directory, version.ToString(CultureInfo.InvariantCulture));
        var (path, maxModelLength, prefixCaching) = ReadEngineArgs(versionDirectory);
        LlamaNative.UseLogger(_logger);
        LlamaModel model;
        try
        {
            model = LlamaModel.Load(path, maxModelLength, DefaultContextCap, maxContexts, threads, _logger, prefixCaching: prefixCaching);
        }
        catch (Exception exception) when (exception is LoadWeightsFailedException or RuntimeError or IOException or ArgumentException)
        {
            throw new ModelLoadException($"failed to load GGUF file '{path}': {exception.Message}");
        }
        var scheduling = SchedulerSettings.FromConfig(completed) with
        {
            Mode = BatchingMode.Inflight,
            MaxBatchSize = maxContexts,
        };
        LogLoaded(_logger, definition.Name, Path.GetFileName(path), model.ContextSize, maxContexts);
        Action<int, int>? prefixObserved = null;
        if (prefixCaching && metrics is not null)
        {
            var cache = metrics.VllmPrefixCache;
            var label = version.ToString(CultureInfo.InvariantCulture);
            prefixObserved = (prompt, reused) => cache.Record(definition.Name, label, prompt, reused);
        }
        return new VllmModel(definition.Name, model, completed, scheduling, Seeds) { PrefixObserved = prefixObserved };
    }

    private static (string Path, int MaxModelLength, bool PrefixCaching) ReadEngineArgs(string versionDirectory)
    {
        var argsPath = Path.Combine(versionDirectory, EngineArgsFile);
        if (!File.Exists(argsPath))
        {
            throw new ModelLoadException($"'{EngineArgsFile}' containing vllm engine args must be provided in '{versionDirectory}'");
        }
        JsonElement args;
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(argsPath));
            args = document.RootElement.Clone();
        }
        catch (JsonException exception)
        {
            throw new ModelLoadException($"'{argsPath}' is not valid JSON: {exception.Message}");
        }
        if (args.ValueKind != JsonValueKind.Object)
        {
            throw new ModelLoadException($"'{argsPath}' must hold a JSON object of vllm engine args");
        }
        var maxModelLength = 0;
        if (args.TryGetProperty("max_model_len", out var length)
            && !(length.TryGetInt32(out maxModelLength) && maxModelLength > 0))
        {
            throw new ModelLoadException($"'{argsPath}': max_model_len must be a positive integer");
        }
        var prefixCaching = false;
        if (args.TryGetProperty("enable_prefix_caching", out var caching))
        {
            prefixCaching = caching.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw new ModelLoadException($"'{argsPath}': enable_prefix_caching must be true or false"),
            };
        }
        string path;
        if (args.TryGetProperty("model", out var model) && model.ValueKind == JsonValueKind.String && model.GetString() is { Length: > 0 } name)
        {
            path = Path.GetFullPath(name, versionDirectory);
        }
        else
        {
            var candidates = Directory.GetFiles(versionDirectory, "*.gguf");
            path = candidates.Length == 1
                ? candidates[0]
                : throw new ModelLoadException($"'{argsPath}' names no \"model\" and '{versionDirectory}' holds {candidates.Length} .gguf files (expected one)");
        }
        if (!File.Exists(path))
        {
            throw new ModelLoadException(
                $"GGUF file '{path}' named by '{argsPath}' does not exist: this engine runs GGUF files with llama.cpp (it never downloads weights)");
        }
        return (path, maxModelLength, prefixCaching);
    }

    private static int? PositiveParameter(ModelConfig config, string key)
    {
        if (!config.Parameters.TryGetValue(key, out var parameter))
        {
            return null;
        }
        return int.TryParse(parameter.StringValue, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value > 0
            ? value
            : throw new ModelLoadException($"parameter '{key}' must be a positive integer, got '{parameter.StringValue}'");
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Model {Model}: loaded {File} with llama.cpp, context {ContextSize} tokens, {MaxContexts} contexts")]
    private static partial void LogLoaded(ILogger logger, string model, string file, int contextSize, int maxContexts);
}
