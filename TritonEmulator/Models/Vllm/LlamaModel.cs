using System.Text;
using LLama;
using LLama.Common;
using LLama.Native;
using Microsoft.Extensions.Logging;

namespace TritonEmulator.Models.Vllm;

/// <summary>
/// One GGUF model under llama.cpp: the weights and one context whose KV cache holds up to
/// <see cref="MaxContexts"/> sequences (llama.cpp's <c>n_seq_max</c>) of <see cref="ContextSize"/>
/// tokens each. A request borrows a sequence id while it generates; every scheduler step decodes the
/// next token (or prompt chunk) of all running requests in one batch, as vLLM does.
/// </summary>
internal sealed class LlamaModel : IDisposable
{
    /// <summary>Prompt tokens a request decodes per step.</summary>
    public const int PromptChunk = 64;

    /// <summary>vLLM's default KV block size: prefixes are reused in whole blocks of this many tokens.</summary>
    public const int PrefixBlockSize = 16;

    private readonly Stack<LLamaSeqId> _free = new();
    // With prefix caching: free sequences keep their KV cells and the tokens in them, oldest first.
    private readonly List<KeptSequence> _kept = [];
    private readonly object _gate = new();
    private bool _disposed;

    private LlamaModel(LLamaWeights weights, LLamaContext context, int contextSize, int maxContexts)
    {
        Weights = weights;
        Context = context;
        ContextSize = contextSize;
        MaxContexts = maxContexts;
        Vocabulary = weights.Vocab;
        for (var seq = maxContexts - 1; seq >= 0; seq--)
        {
            _free.Push((LLamaSeqId)seq);
        }
    }

    public LLamaWeights Weights { get; }

    /// <summary>The context every request's sequence lives in (used by the engine loop only).</summary>
    public LLamaContext Context { get; }

    public SafeLlamaModelHandle.Vocabulary Vocabulary { get; }

    /// <summary>Tokens one sequence holds: prompt plus generated text.</summary>
    public int ContextSize { get; }

    /// <summary>Prompt tokens decoded per step.</summary>
    public int PrefillChunk => PromptChunk;

    /// <summary>Sequences (requests) that generate at once.</summary>
    public int MaxContexts { get; }

    /// <summary>
    /// vLLM's <c>enable_prefix_caching</c>: a finished request's sequence keeps its KV cells; the next
    /// request takes the free sequence sharing its longest prompt prefix (whole blocks of
    /// <see cref="PrefixBlockSize"/>, never the last prompt token), drops the cells after it and
    /// evaluates only the rest. With none sharing, the least recently used one is cleared.
    /// </summary>
    public bool PrefixCaching { get; init; }

    /// <summary>
    /// Loads a GGUF file and creates its context. <paramref name="contextSize"/> (tokens per sequence)
    /// 0 means the model's trained context, capped at <paramref name="defaultContextCap"/>. The KV cache
    /// holds that many tokens per sequence, or <paramref name="totalKvTokens"/> shared by all of them
    /// when given (TensorRT-LLM's paged KV cache: its size is the engine's, not per sequence).
    /// </summary>
    public static LlamaModel Load(string path, int contextSize, int defaultContextCap, int maxContexts, int? threads, ILogger logger,
        long? totalKvTokens = null, bool prefixCaching = false)
    {
        LlamaNative.EnsureConfigured();
        var parameters = new ModelParams(path)
        {
            GpuLayerCount = 0,
            ContextSize = 0,
            // A step holds at most a prompt chunk per sequence; llama.cpp splits it into ubatches of 64.
            BatchSize = (uint)(PromptChunk * maxContexts),
            UBatchSize = PromptChunk,
            SeqMax = (uint)maxContexts,
            // One KV buffer shared by the sequences: a step's tokens go through the model in one ubatch
            // whatever sequence ids are in use (the scheduler never admits more KV tokens than it holds).
            KVUnified = true,
        };
        if (threads is { } t)
        {
            parameters.Threads = t;
            parameters.BatchThreads = t;
        }
        var weights = LLamaWeights.LoadFromFile(parameters);
        try
        {
            var trained = weights.ContextSize;
            var perSequence = contextSize > 0 ? contextSize : Math.Min(trained > 0 ? trained : defaultContextCap, defaultContextCap);
            parameters.ContextSize = (uint)(totalKvTokens ?? (long)perSequence * maxContexts);
            var context = weights.CreateContext(parameters, logger);
            return new LlamaModel(weights, context, perSequence, maxContexts) { PrefixCaching = prefixCaching };
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    /// <summary>The prompt's tokens as the model's tokenizer splits them, BOS added when the model asks for it.</summary>
    public LLamaToken[] Tokenize(string text) => Weights.Tokenize(text, add_bos: true, special: true, Encoding.UTF8);

    public StreamingTokenDecoder CreateDecoder() => new(Encoding.UTF8, Weights) { DecodeSpecialTokens = false };

    public bool IsEndOfGeneration(LLamaToken token) => token.IsEndOfGeneration(Vocabulary);

    /// <summary>Throws <see cref="FormatException"/> when llama.cpp cannot parse the GBNF grammar (checked before the request is queued).</summary>
    public void CheckGrammar(string grammar)
    {
        // llama.cpp only logs a bad grammar and returns no sampler, which would be added to the chain anyway.
        Guided.GbnfCheck.Validate(grammar);
        try
        {
            using var chain = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
            chain.AddGrammar(Weights.NativeHandle, grammar, "root");
        }
        catch (Exception exception) when (exception is not OutOfMemoryException)
        {
            throw new FormatException($"the structured output grammar was rejected by llama.cpp: {exception.Message}");
        }
    }

    /// <summary>A sequence id with nothing in the KV cache; the scheduler admits at most <see cref="MaxContexts"/> requests, so one is free.</summary>
    public LLamaSeqId RentSequence() => RentSequence([], out _);

    /// <summary>
    /// A free sequence for <paramref name="prompt"/>; <paramref name="reused"/> leading prompt tokens
    /// are already in its KV cells (0 without prefix caching), the cells after them are dropped.
    /// </summary>
    public LLamaSeqId RentSequence(ReadOnlySpan<LLamaToken> prompt, out int reused)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            reused = 0;
            var best = -1;
            for (var i = 0; i < _kept.Count; i++)
            {
                var shared = SharedBlocks(_kept[i].Tokens, prompt);
                if (shared > reused)
                {
                    (best, reused) = (i, shared);
                }
            }
            if (best < 0)
            {
                if (_free.TryPop(out var empty))
                {
                    return empty;
                }
                if (_kept.Count == 0)
                {
                    throw new InvalidOperationException($"all {MaxContexts} llama.cpp sequences are in use");
                }
                best = 0; // nothing shared, nothing empty: the least recently used kept sequence
            }
            var kept = _kept[best];
            _kept.RemoveAt(best);
            Context.NativeHandle.MemorySequenceRemove(kept.Sequence, reused, -1);
            return kept.Sequence;
        }
    }

    /// <summary>Tokens of <paramref name="cached"/> and <paramref name="prompt"/> in common from the start, in whole blocks, leaving the prompt's last token.</summary>
    internal static int SharedBlocks(ReadOnlySpan<LLamaToken> cached, ReadOnlySpan<LLamaToken> prompt)
    {
        var limit = Math.Min(cached.Length, prompt.Length - 1);
        var common = 0;
        while (common < limit && (int)cached[common] == (int)prompt[common])
        {
            common++;
        }
        return common / PrefixBlockSize * PrefixBlockSize;
    }

    /// <summary>Drops the sequence's tokens from the KV cache and makes the id free for the next request.</summary>
    public void ReturnSequence(LLamaSeqId seq) => ReturnSequence(seq, null);

    /// <summary>
    /// The request on <paramref name="seq"/> ended. With prefix caching and <paramref name="evaluated"/>
    /// (the tokens whose KV the sequence holds, in position order) its cells stay for the next request
    /// to share; otherwise they are dropped.
    /// </summary>
    public void ReturnSequence(LLamaSeqId seq, LLamaToken[]? evaluated)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            if (PrefixCaching && evaluated is { Length: >= PrefixBlockSize })
            {
                _kept.Add(new KeptSequence(seq, evaluated));
                return;
            }
            Context.NativeHandle.MemorySequenceRemove(seq, -1, -1);
            _free.Push(seq);
        }
    }

    private sealed record KeptSequence(LLamaSeqId Sequence, LLamaToken[] Tokens);

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
            Context.Dispose();
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
