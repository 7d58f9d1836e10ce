using System.Collections.Concurrent;
using System.Text;
using LLama;
using LLama.Common;
using LLama.Native;
using Microsoft.Extensions.Logging;

namespace TritonEmulator.Models.Vllm;

/// <summary>
/// One GGUF model under llama.cpp: the weights, loaded once, and up to <see cref="MaxContexts"/>
/// contexts (each with its own KV cache) that requests borrow while they generate.
/// </summary>
internal sealed class LlamaModel : IDisposable
{
    private readonly ModelParams _parameters;
    private readonly ConcurrentBag<LLamaContext> _idle = [];
    private readonly List<LLamaContext> _all = [];
    private readonly object _gate = new();
    private readonly ILogger _logger;
    private bool _disposed;

    private LlamaModel(LLamaWeights weights, ModelParams parameters, int maxContexts, ILogger logger)
    {
        Weights = weights;
        _parameters = parameters;
        MaxContexts = maxContexts;
        _logger = logger;
        Vocabulary = weights.Vocab;
    }

    public LLamaWeights Weights { get; }

    public SafeLlamaModelHandle.Vocabulary Vocabulary { get; }

    /// <summary>Tokens one context holds: prompt plus generated text.</summary>
    public int ContextSize => (int)_parameters.ContextSize!.Value;

    /// <summary>Prompt tokens decoded per step (and the llama.cpp batch size).</summary>
    public int PrefillChunk => (int)_parameters.BatchSize;

    public int MaxContexts { get; }

    /// <summary>
    /// Loads a GGUF file. <paramref name="contextSize"/> 0 means the model's trained context,
    /// capped at <paramref name="defaultContextCap"/>.
    /// </summary>
    public static LlamaModel Load(string path, int contextSize, int defaultContextCap, int maxContexts, int? threads, ILogger logger)
    {
        LlamaNative.EnsureConfigured();
        var parameters = new ModelParams(path)
        {
            GpuLayerCount = 0,
            ContextSize = 0,
            BatchSize = 64,
            UBatchSize = 64,
            SeqMax = 1,
        };
        if (threads is { } t)
        {
            parameters.Threads = t;
            parameters.BatchThreads = t;
        }
        var weights = LLamaWeights.LoadFromFile(parameters);
        var trained = weights.ContextSize;
        parameters.ContextSize = (uint)(contextSize > 0 ? contextSize : Math.Min(trained > 0 ? trained : defaultContextCap, defaultContextCap));
        return new LlamaModel(weights, parameters, maxContexts, logger);
    }

    /// <summary>The prompt's tokens as the model's tokenizer splits them, BOS added when the model asks for it.</summary>
    public LLamaToken[] Tokenize(string text) => Weights.Tokenize(text, add_bos: true, special: true, Encoding.UTF8);

    public StreamingTokenDecoder CreateDecoder() => new(Encoding.UTF8, Weights) { DecodeSpecialTokens = false };

    public bool IsEndOfGeneration(LLamaToken token) => token.IsEndOfGeneration(Vocabulary);

    /// <summary>A context with an empty KV cache; the scheduler admits at most <see cref="MaxContexts"/> requests, so one is free.</summary>
    public LLamaContext Rent()
    {
        if (_idle.TryTake(out var context))
        {
            return context;
        }
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_all.Count >= MaxContexts)
            {
                throw new InvalidOperationException($"all {MaxContexts} llama.cpp contexts are in use");
            }
            context = Weights.CreateContext(_parameters, _logger);
            _all.Add(context);
            return context;
        }
    }

    public void Return(LLamaContext context)
    {
        context.NativeHandle.MemoryClear(data: false);
        _idle.Add(context);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            foreach (var context in _all)
            {
                context.Dispose();
            }
            _all.Clear();
            Weights.Dispose();
        }
    }
}

/// <summary>
/// llama.cpp is one native library per process: it is configured once, before the first model
/// loads (LLamaSharp refuses configuration after that). Native log lines go to the logger of the
/// engine that loads models now.
/// </summary>
internal static partial class LlamaNative
{
    private static readonly Lock Gate = new();
    private static bool _configured;
    private static ILogger? _logger;

    /// <summary>The logger native messages (warnings and errors) go to.</summary>
    public static void UseLogger(ILogger logger) => Volatile.Write(ref _logger, logger);

    public static void EnsureConfigured()
    {
        lock (Gate)
        {
            if (_configured)
            {
                return;
            }
            NativeLibraryConfig.All.WithLogCallback(static (level, message) =>
            {
                if (level is LLamaLogLevel.Warning or LLamaLogLevel.Error && Volatile.Read(ref _logger) is { } logger)
                {
                    try
                    {
                        LogNative(logger, level.ToString(), message.TrimEnd());
                    }
                    catch (ObjectDisposedException)
                    {
                        // The engine that owned the logger has stopped.
                    }
                }
            });
            _configured = true;
        }
    }

    /// <summary>
    /// Configures llama.cpp and loads its native library now. Needed before calls that do not load it
    /// themselves: <c>LLamaQuantizer</c> calls llama.cpp without going through LLamaSharp's loader.
    /// </summary>
    public static void EnsureLoaded()
    {
        EnsureConfigured();
        NativeApi.llama_empty_call();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "llama.cpp {Level}: {Message}")]
    private static partial void LogNative(ILogger logger, string level, string message);
}
