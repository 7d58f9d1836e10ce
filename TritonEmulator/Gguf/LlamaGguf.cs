using System.Globalization;

namespace TritonEmulator.Gguf;

/// <summary>
/// The hyperparameters of a <c>llama</c>-architecture model, as llama.cpp reads them from GGUF
/// (<c>llama.block_count</c>, <c>llama.embedding_length</c>, …).
/// </summary>
internal sealed record LlamaShape(int Vocab, int Dim, int Layers, int Heads, int KvHeads, int Ffn, int Context)
{
    /// <summary>TinyLlama-1.1B-Chat-v1.0: 22 layers, 2048 dims, 32 heads / 4 KV heads, FFN 5632, context 2048, vocabulary 32,000.</summary>
    public static LlamaShape TinyLlama1B { get; } = new(Vocab: 32_000, Dim: 2048, Layers: 22, Heads: 32, KvHeads: 4, Ffn: 5632, Context: 2048);

    public float RopeFreqBase { get; init; } = 10000f;

    public float RmsEpsilon { get; init; } = 1e-5f;

    public int HeadDim => Dim / Heads;

    public int KvDim => KvHeads * HeadDim;

    /// <summary>Every tensor, in the order llama.cpp's converter writes them; dimensions innermost first.</summary>
    public IReadOnlyList<LlamaTensor> Tensors()
    {
        var tensors = new List<LlamaTensor> { new("token_embd.weight", -1, LlamaTensorRole.TokenEmbedding, [Dim, Vocab]) };
        for (var l = 0; l < Layers; l++)
        {
            tensors.Add(Block(l, "attn_norm", LlamaTensorRole.AttentionNorm, [Dim]));
            tensors.Add(Block(l, "attn_q", LlamaTensorRole.Query, [Dim, Dim]));
            tensors.Add(Block(l, "attn_k", LlamaTensorRole.Key, [Dim, KvDim]));
            tensors.Add(Block(l, "attn_v", LlamaTensorRole.Value, [Dim, KvDim]));
            tensors.Add(Block(l, "attn_output", LlamaTensorRole.AttentionOutput, [Dim, Dim]));
            tensors.Add(Block(l, "ffn_norm", LlamaTensorRole.FfnNorm, [Dim]));
            tensors.Add(Block(l, "ffn_gate", LlamaTensorRole.Gate, [Dim, Ffn]));
            tensors.Add(Block(l, "ffn_up", LlamaTensorRole.Up, [Dim, Ffn]));
            tensors.Add(Block(l, "ffn_down", LlamaTensorRole.Down, [Ffn, Dim]));
        }
        tensors.Add(new("output_norm.weight", -1, LlamaTensorRole.OutputNorm, [Dim]));
        tensors.Add(new("output.weight", -1, LlamaTensorRole.Output, [Dim, Vocab]));
        return tensors;

        static LlamaTensor Block(int layer, string name, LlamaTensorRole role, long[] dims) =>
            new(string.Create(CultureInfo.InvariantCulture, $"blk.{layer}.{name}.weight"), layer, role, dims);
    }

    /// <summary>Weights of the model (every tensor's elements).</summary>
    public long ParameterCount => Tensors().Sum(static t => t.Elements);
}

internal enum LlamaTensorRole
{
    TokenEmbedding,
    AttentionNorm,
    Query,
    Key,
    Value,
    AttentionOutput,
    FfnNorm,
    Gate,
    Up,
    Down,
    OutputNorm,
    Output,
}

/// <summary>One tensor of a llama model: its GGUF name, block (-1 outside the blocks), role and dimensions (innermost first).</summary>
internal sealed record LlamaTensor(string Name, int Layer, LlamaTensorRole Role, long[] Dims)
{
    public long Elements => Dims.Aggregate(1L, static (product, d) => product * d);

    /// <summary>Norm weights are vectors; llama.cpp keeps them F32 whatever the file type.</summary>
    public bool IsVector => Dims.Length == 1;
}

/// <summary>
/// A SentencePiece-style (<c>tokenizer.ggml.model = "llama"</c>) vocabulary: pieces, scores (higher
/// merges first) and token types as llama.cpp reads them.
/// </summary>
internal sealed record SentencePieceVocabulary(IReadOnlyList<string> Tokens, IReadOnlyList<float> Scores, IReadOnlyList<int> TokenTypes, int Bos, int Eos, int Unknown)
{
    /// <summary>llama.cpp's token types (<c>llama_token_type</c>).</summary>
    public const int Normal = 1, UnknownType = 2, Control = 3, Byte = 6;

    /// <summary>The word piece marker (U+2581) SentencePiece puts in place of a space.</summary>
    public const string WordMarker = "\u2581";

    /// <summary>
    /// A vocabulary of <paramref name="size"/> pieces laid out like Llama's: <c>&lt;unk&gt;</c>,
    /// <c>&lt;s&gt;</c>, <c>&lt;/s&gt;</c>, the 256 byte-fallback tokens <c>&lt;0x00&gt;</c>…<c>&lt;0xFF&gt;</c>,
    /// then filler pieces: <c>▁</c>, the printable ASCII characters, <c>▁</c> + a letter,
    /// two lowercase letters with and without <c>▁</c>, <c>▁</c> + three lowercase letters, then three
    /// lowercase letters, as many as fit. So a space followed by any three lowercase letters is one
    /// token, which makes prompt lengths predictable. Scores fall with the id, as in Llama's vocabulary.
    /// </summary>
    public static SentencePieceVocabulary Synthetic(int size)
    {
        const int specialsAndBytes = 3 + 256;
        if (size <= specialsAndBytes)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"a synthetic vocabulary holds the {specialsAndBytes} special and byte tokens and at least one piece");
        }
        var tokens = new List<string>(size) { "<unk>", "<s>", "</s>" };
        var types = new List<int>(size) { UnknownType, Control, Control };
        for (var b = 0; b < 256; b++)
        {
            tokens.Add(string.Create(CultureInfo.InvariantCulture, $"<0x{b:X2}>"));
            types.Add(Byte);
        }
        var firstPiece = tokens.Count;
        foreach (var piece in Pieces())
        {
            if (tokens.Count == size)
            {
                break;
            }
            tokens.Add(piece);
            types.Add(Normal);
        }
        if (tokens.Count != size)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"a synthetic vocabulary holds at most {tokens.Count} tokens");
        }
        var scores = new float[size];
        for (var id = firstPiece; id < size; id++)
        {
            scores[id] = -(id - firstPiece);
        }
        return new SentencePieceVocabulary(tokens, scores, types, Bos: 1, Eos: 2, Unknown: 0);

        static IEnumerable<string> Pieces()
        {
            const string letters = "abcdefghijklmnopqrstuvwxyz";
            yield return WordMarker;
            for (var c = '!'; c <= '~'; c++)
            {
                yield return c.ToString();
            }
            foreach (var c in letters + letters.ToUpperInvariant())
            {
                yield return WordMarker + c;
            }
            foreach (var marker in new[] { "", WordMarker })
            {
                foreach (var a in letters)
                {
                    foreach (var b in letters)
                    {
                        yield return $"{marker}{a}{b}";
                    }
                }
            }
            foreach (var marker in new[] { WordMarker, "" })
            {
                foreach (var a in letters)
                {
                    foreach (var b in letters)
                    {
                        foreach (var c in letters)
                        {
                            yield return $"{marker}{a}{b}{c}";
                        }
                    }
                }
            }
        }
    }
}

/// <summary>Writes a <c>llama</c> model as GGUF: llama.cpp's metadata for a <see cref="LlamaShape"/> and a vocabulary, and every tensor.</summary>
internal static class LlamaGguf
{
    /// <summary>
    /// A writer holding the model's metadata and tensors. Matrices are <paramref name="matrixType"/>,
    /// norm vectors F32 (as llama.cpp's converter writes them); <paramref name="weights"/> gives each
    /// tensor's elements.
    /// </summary>
    public static GgufWriter Create(string name, LlamaShape shape, SentencePieceVocabulary vocabulary, GgmlType matrixType, Func<LlamaTensor, TensorFill> weights)
    {
        if (vocabulary.Tokens.Count != shape.Vocab || vocabulary.Scores.Count != shape.Vocab || vocabulary.TokenTypes.Count != shape.Vocab)
        {
            throw new ArgumentException($"the vocabulary has {vocabulary.Tokens.Count} tokens for a model of {shape.Vocab}", nameof(vocabulary));
        }
        if (shape.Dim % shape.Heads != 0 || shape.Heads % shape.KvHeads != 0)
        {
            throw new ArgumentException("the embedding length must split into the heads, and the heads into the KV heads", nameof(shape));
        }
        var writer = new GgufWriter()
            .AddString("general.architecture", "llama")
            .AddString("general.name", name)
            .AddUInt32("general.alignment", GgufWriter.Alignment)
            // llama_ftype: 0 = all F32, 1 = mostly F16.
            .AddUInt32("general.file_type", matrixType == GgmlType.F16 ? 1u : 0u)
            // llama.cpp reads these hyperparameters as u32 (what its reference converter writes).
            .AddUInt32("llama.context_length", (uint)shape.Context)
            .AddUInt32("llama.embedding_length", (uint)shape.Dim)
            .AddUInt32("llama.block_count", (uint)shape.Layers)
            .AddUInt32("llama.feed_forward_length", (uint)shape.Ffn)
            .AddUInt32("llama.attention.head_count", (uint)shape.Heads)
            .AddUInt32("llama.attention.head_count_kv", (uint)shape.KvHeads)
            .AddUInt32("llama.rope.dimension_count", (uint)shape.HeadDim)
            .AddFloat32("llama.rope.freq_base", shape.RopeFreqBase)
            .AddFloat32("llama.attention.layer_norm_rms_epsilon", shape.RmsEpsilon)
            .AddUInt32("llama.vocab_size", (uint)shape.Vocab)
            .AddString("tokenizer.ggml.model", "llama")
            .AddStrings("tokenizer.ggml.tokens", vocabulary.Tokens)
            .AddFloat32s("tokenizer.ggml.scores", vocabulary.Scores)
            .AddInt32s("tokenizer.ggml.token_type", vocabulary.TokenTypes)
            .AddUInt32("tokenizer.ggml.bos_token_id", (uint)vocabulary.Bos)
            .AddUInt32("tokenizer.ggml.eos_token_id", (uint)vocabulary.Eos)
            .AddUInt32("tokenizer.ggml.unknown_token_id", (uint)vocabulary.Unknown)
            .AddBool("tokenizer.ggml.add_bos_token", true)
            .AddBool("tokenizer.ggml.add_eos_token", false);
        foreach (var tensor in shape.Tensors())
        {
            writer.AddTensor(tensor.Name, tensor.Dims, tensor.IsVector ? GgmlType.F32 : matrixType, weights(tensor));
        }
        return writer;
    }

    /// <summary>
    /// Seeded random weights for measuring speed (the text they produce is gibberish): matrix elements
    /// uniform in ±<paramref name="scale"/>, norm weights 1, so activations stay finite through any
    /// number of layers. The <c>output.weight</c> row of <paramref name="silentToken"/> (e.g. the end of
    /// sequence) is zero: its logit is exactly 0 while the largest of the other random logits is
    /// positive, so greedy decoding never picks it and a generation runs to its length.
    /// </summary>
    public static Func<LlamaTensor, TensorFill> RandomWeights(LlamaShape shape, int seed, float scale, int? silentToken = null) => tensor =>
    {
        var random = new Random(StableSeed(seed, tensor.Name));
        var silent = tensor.Role == LlamaTensorRole.Output && silentToken is { } token ? (Start: (long)token * shape.Dim, End: (long)(token + 1) * shape.Dim) : (Start: 0L, End: 0L);
        return (offset, chunk) =>
        {
            if (tensor.IsVector)
            {
                chunk.Fill(1f);
                return;
            }
            for (var i = 0; i < chunk.Length; i++)
            {
                chunk[i] = (random.NextSingle() * 2 - 1) * scale;
            }
            for (var at = Math.Max(offset, silent.Start); at < Math.Min(offset + chunk.Length, silent.End); at++)
            {
                chunk[(int)(at - offset)] = 0f;
            }
        };
    };

    /// <summary>A seed per tensor that does not depend on the process (string.GetHashCode does): FNV-1a over the name.</summary>
    private static int StableSeed(int seed, string name)
    {
        var hash = 2166136261u ^ (uint)seed;
        foreach (var c in name)
        {
            hash = (hash ^ c) * 16777619u;
        }
        return (int)(hash & int.MaxValue);
    }
}
