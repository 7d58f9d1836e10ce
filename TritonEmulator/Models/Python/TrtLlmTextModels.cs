using Gateway.Grpc.Tensors;
using Microsoft.ML.Tokenizers;
using Triton.Inference;
using TritonEmulator.Models.TensorRtLlm;
using TritonEmulator.Models.Text;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models.Python;

/// <summary>
/// The CPU engine has no Python runtime. A <c>backend: "python"</c> model is served natively when its
/// tensors are those of TensorRT-LLM's <c>preprocessing</c> (inputs <c>QUERY</c>, <c>REQUEST_OUTPUT_LEN</c>,
/// output <c>INPUT_ID</c>) or <c>postprocessing</c> model (inputs <c>TOKENS_BATCH</c>,
/// <c>SEQUENCE_LENGTH</c>, output <c>OUTPUT</c>), whatever the folder is called; any other Python
/// model is UNAVAILABLE. Both tokenize with the tokenizer in <c>tokenizer_dir</c> (a Hugging Face
/// byte-level BPE folder: <c>vocab.json</c> + <c>merges.txt</c>; relative to the model folder or
/// absolute) and fall back to GPT-2 BPE, GPT-J's tokenizer, when the folder is not there. When
/// <c>tokenizer_dir</c> is a <c>.gguf</c> file or a folder holding one, they use that GGUF's own
/// vocabulary (llama.cpp's tokenizer), the one the <c>tensorrt_llm</c> model runs on llama.cpp with.
/// </summary>
internal static class PythonModels
{
    public const string BackendName = "python";
    public const string TokenizerDirParameter = "tokenizer_dir";

    public static IModelBackend Load(ModelDefinition definition, ModelConfig config, TokenLanguageModel language)
    {
        var tokenizer = ResolveTokenizer(definition, config, language);
        if (HasInput(config, "QUERY") && HasInput(config, "REQUEST_OUTPUT_LEN") && HasOutput(config, "INPUT_ID"))
        {
            var addSpecial = config.Parameters.TryGetValue("add_special_tokens", out var add)
                && add.StringValue.Equals("true", StringComparison.OrdinalIgnoreCase);
            return new TrtLlmPreprocessing(config, tokenizer, addSpecial);
        }
        if (HasInput(config, "TOKENS_BATCH") && HasInput(config, "SEQUENCE_LENGTH") && HasOutput(config, "OUTPUT"))
        {
            var skipSpecial = !(config.Parameters.TryGetValue("skip_special_tokens", out var skip)
                && skip.StringValue.Equals("false", StringComparison.OrdinalIgnoreCase));
            return new TrtLlmPostprocessing(config, tokenizer, skipSpecial);
        }
        tokenizer.Dispose();
        throw new ModelLoadException(
            "the CPU engine has no Python runtime: only TensorRT-LLM's preprocessing and postprocessing models are served (natively, recognised by their tensors)");
    }

    internal static ITrtLlmTokenizer ResolveTokenizer(ModelDefinition definition, ModelConfig config, TokenLanguageModel language)
    {
        if (config.Parameters.TryGetValue(TokenizerDirParameter, out var p) && p.StringValue is { Length: > 0 } dir && !dir.StartsWith("${", StringComparison.Ordinal))
        {
            if (GgufLocation.Find(dir, definition.Directory) is { } gguf)
            {
                return GgufTrtLlmTokenizer.Load(gguf);
            }
            var path = Path.IsPathRooted(dir) || definition.Directory is null ? dir : Path.Combine(definition.Directory, dir);
            var vocab = Path.Combine(path, "vocab.json");
            var merges = Path.Combine(path, "merges.txt");
            if (File.Exists(vocab) && File.Exists(merges))
            {
                using var vocabStream = File.OpenRead(vocab);
                using var mergesStream = File.OpenRead(merges);
                return new BpeTrtLlmTokenizer(CodeGenTokenizer.Create(vocabStream, mergesStream));
            }
        }
        return new BpeTrtLlmTokenizer(language.Tokenizer);
    }

    private static bool HasInput(ModelConfig config, string name) => config.Input.Any(i => i.Name == name);

    private static bool HasOutput(ModelConfig config, string name) => config.Output.Any(o => o.Name == name);
}

/// <summary>A Python model's stand-in: instant, batched by the model's dynamic batcher like any other.</summary>
internal abstract class NativePythonModel(ModelConfig config, ITrtLlmTokenizer tokenizer) : ISelfConfiguredBackend
{
    protected ITrtLlmTokenizer Tokenizer => tokenizer;

    public ModelConfig CompletedConfig { get; } = config;

    public SchedulerSettings Scheduling { get; } = SchedulerSettings.FromConfig(config) with { Mode = BatchingMode.Static };

    public TimingProfile Timing { get; } = TimingProfile.ZeroLatency;

    public ITextGeneration? TextGeneration => null;

    public IScheduledWork CreateWork(ValidatedRequest request, ResponseStream responses, bool decoupled) =>
        new OneShotWork(request.BatchSize, responses, Run(request, responses));

    /// <summary>Computes the one response of a request (throws <see cref="InferenceException"/> for bad input).</summary>
    protected abstract Func<ModelInferResponse> Run(ValidatedRequest request, ResponseStream responses);

    public void Dispose() => tokenizer.Dispose();

    private sealed class OneShotWork(int batchSize, ResponseStream responses, Func<ModelInferResponse> run) : IScheduledWork
    {
        public int BatchSize => batchSize;

        public int PromptTokens => 0;

        public long KvTokens => 0;

        public int ResponsesWritten => responses.Written;

        public bool Step()
        {
            responses.Write(run(), final: true);
            return true;
        }

        public void Fail(InferenceException error) => responses.Fail(error);
    }
}

/// <summary>
/// TensorRT-LLM's <c>preprocessing</c>: <c>QUERY</c> [B,1] → <c>INPUT_ID</c> [B,L] (padded with the
/// pad id) and <c>REQUEST_INPUT_LEN</c> [B,1]; <c>REQUEST_OUTPUT_LEN</c> passed on; each row of
/// <c>STOP_WORDS_DICT</c> / <c>BAD_WORDS_DICT</c> [B,N] (one word or phrase per element) → the
/// <c>[B, 2, W]</c> word list (ids padded with 0, cumulative offsets padded with -1);
/// <c>OUT_END_ID</c> / <c>OUT_PAD_ID</c> from <c>END_ID</c> / <c>PAD_ID</c>, else the tokenizer's
/// end of text; <c>EMBEDDING_BIAS</c> [B,0] (no bias words given).
/// </summary>
internal sealed class TrtLlmPreprocessing(ModelConfig config, ITrtLlmTokenizer tokenizer, bool addSpecialTokens) : NativePythonModel(config, tokenizer)
{
    protected override Func<ModelInferResponse> Run(ValidatedRequest request, ResponseStream responses)
    {
        var batch = request.BatchSize;
        var label = request.Label;
        var query = request.Input("QUERY")!;
        var texts = TensorCodec.DecodeStrings(query.Raw.Span);
        if (texts.Length != batch)
        {
            throw RequestValidator.Invalid($"{label} QUERY must hold one string per batch row, got {texts.Length} for {batch}");
        }
        if (request.Input("EMBEDDING_BIAS_WORDS") is { ElementCount: > 0 })
        {
            throw RequestValidator.Invalid($"{label} embedding_bias_words are not supported by this engine");
        }
        var ids = new int[batch][];
        var width = 1;
        for (var b = 0; b < batch; b++)
        {
            ids[b] = Tokenizer.Encode(texts[b], addSpecialTokens);
            if (ids[b].Length == 0)
            {
                throw RequestValidator.Invalid($"{label} text_input[{b}] must not be empty");
            }
            width = Math.Max(width, ids[b].Length);
        }
        var endIds = IdsOrDefault(request.Input("END_ID"), batch, Tokenizer.EndId);
        var padIds = IdsOrDefault(request.Input("PAD_ID"), batch, endIds[0]);
        var outputLength = request.Input("REQUEST_OUTPUT_LEN")!;
        var stop = WordList(request.Input("STOP_WORDS_DICT"), batch);
        var bad = WordList(request.Input("BAD_WORDS_DICT"), batch);
        return () =>
        {
            var response = responses.NewResponse();
            if (request.WantsOutput("INPUT_ID"))
            {
                var flat = new int[batch * width];
                for (var b = 0; b < batch; b++)
                {
                    flat.AsSpan(b * width, width).Fill(padIds[b]);
                    ids[b].CopyTo(flat, b * width);
                }
                ResponseStream.AddOutput(response, "INPUT_ID", TensorDataTypes.Int32, TensorCodec.EncodeInt32(flat), batch, width);
            }
            Add(response, request, "REQUEST_INPUT_LEN", [.. ids.Select(static row => row.Length)]);
            if (request.WantsOutput("REQUEST_OUTPUT_LEN"))
            {
                ResponseStream.AddOutput(response, "REQUEST_OUTPUT_LEN", TensorDataTypes.Int32, Google.Protobuf.ByteString.CopyFrom(outputLength.Raw.Span), batch, 1);
            }
            Add(response, request, "OUT_END_ID", endIds);
            Add(response, request, "OUT_PAD_ID", padIds);
            if (request.WantsOutput("STOP_WORDS_IDS"))
            {
                ResponseStream.AddOutput(response, "STOP_WORDS_IDS", TensorDataTypes.Int32, TensorCodec.EncodeInt32(stop.Flat), batch, 2, stop.Width);
            }
            if (request.WantsOutput("BAD_WORDS_IDS"))
            {
                ResponseStream.AddOutput(response, "BAD_WORDS_IDS", TensorDataTypes.Int32, TensorCodec.EncodeInt32(bad.Flat), batch, 2, bad.Width);
            }
            if (request.WantsOutput("EMBEDDING_BIAS"))
            {
                ResponseStream.AddOutput(response, "EMBEDDING_BIAS", TensorDataTypes.Fp32, Google.Protobuf.ByteString.Empty, batch, 0);
            }
            return response;
        };
    }

    private static void Add(ModelInferResponse response, ValidatedRequest request, string name, int[] values)
    {
        if (request.WantsOutput(name))
        {
            ResponseStream.AddOutput(response, name, TensorDataTypes.Int32, TensorCodec.EncodeInt32(values), values.Length, 1);
        }
    }

    private static int[] IdsOrDefault(RequestTensor? tensor, int batch, int fallback)
    {
        var ids = new int[batch];
        for (var b = 0; b < batch; b++)
        {
            ids[b] = tensor is { ElementCount: > 0 } t ? t.Int32(t.ElementCount < batch ? 0 : b) : fallback;
        }
        return ids;
    }

    /// <summary>The <c>[B, 2, W]</c> list: per row the words' ids one after another (padded with 0), then the cumulative ends (padded with -1).</summary>
    private (int[] Flat, int Width) WordList(RequestTensor? words, int batch)
    {
        var rows = new List<int[]>[batch];
        var width = 1;
        var perRow = words is null ? 0 : (int)(words.ElementCount / Math.Max(1, batch));
        var strings = words is null ? [] : TensorCodec.DecodeStrings(words.Raw.Span);
        for (var b = 0; b < batch; b++)
        {
            rows[b] = [];
            var total = 0;
            for (var i = 0; i < perRow; i++)
            {
                var text = strings[b * perRow + i];
                if (text.Length == 0)
                {
                    continue;
                }
                var encoded = Tokenizer.Encode(text, addSpecialTokens: false);
                rows[b].Add(encoded);
                total += encoded.Length;
            }
            width = Math.Max(width, Math.Max(total, rows[b].Count));
        }
        var flat = new int[batch * 2 * width];
        for (var b = 0; b < batch; b++)
        {
            var idsRow = flat.AsSpan(b * 2 * width, width);
            var offsets = flat.AsSpan(b * 2 * width + width, width);
            offsets.Fill(-1);
            var at = 0;
            for (var w = 0; w < rows[b].Count; w++)
            {
                rows[b][w].CopyTo(idsRow[at..]);
                at += rows[b][w].Length;
                offsets[w] = at;
            }
        }
        return (flat, width);
    }
}

/// <summary>
/// TensorRT-LLM's <c>postprocessing</c>: <c>TOKENS_BATCH</c> [B, beams, L] up to
/// <c>SEQUENCE_LENGTH</c> [B, beams] → <c>OUTPUT</c> [B, beams], each response decoded on its own as
/// model.py does (so a character split across two streamed responses decodes as U+FFFD), special
/// tokens skipped when <c>skip_special_tokens</c> (the default).
/// </summary>
internal sealed class TrtLlmPostprocessing(ModelConfig config, ITrtLlmTokenizer tokenizer, bool skipSpecial) : NativePythonModel(config, tokenizer)
{
    protected override Func<ModelInferResponse> Run(ValidatedRequest request, ResponseStream responses)
    {
        var tokens = request.Input("TOKENS_BATCH")!;
        var lengths = request.Input("SEQUENCE_LENGTH")!;
        if (tokens.Shape.Length != 3 || lengths.Shape.Length != 2 || lengths.Shape[0] != tokens.Shape[0] || lengths.Shape[1] != tokens.Shape[1])
        {
            throw RequestValidator.Invalid($"{request.Label} TOKENS_BATCH [B, beams, L] and SEQUENCE_LENGTH [B, beams] must agree, got [{string.Join(",", tokens.Shape)}] and [{string.Join(",", lengths.Shape)}]");
        }
        var (batch, beams, width) = ((int)tokens.Shape[0], (int)tokens.Shape[1], (int)tokens.Shape[2]);
        var texts = new string[batch * beams];
        var ids = new List<int>(width);
        for (var row = 0; row < batch * beams; row++)
        {
            var length = Math.Clamp(lengths.Int32(row), 0, width);
            ids.Clear();
            for (var i = 0; i < length; i++)
            {
                ids.Add(tokens.Int32((long)row * width + i));
            }
            texts[row] = Tokenizer.Decode(ids, skipSpecial);
        }
        return () =>
        {
            var response = responses.NewResponse();
            ResponseStream.AddOutput(response, "OUTPUT", TensorDataTypes.Bytes, TensorCodec.EncodeStrings(texts), batch, beams);
            return response;
        };
    }
}
