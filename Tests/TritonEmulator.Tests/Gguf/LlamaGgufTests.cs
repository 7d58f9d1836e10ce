using System.Globalization;
using LLama;
using LLama.Common;
using LLama.Native;
using TritonEmulator.Gguf;
using TritonEmulator.Models.Vllm;

namespace TritonEmulator.Tests.Gguf;

/// <summary>llama.cpp reads what <see cref="GgufWriter"/> and <see cref="LlamaGguf"/> write: the shape, the vocabulary, the tensor types.</summary>
public sealed class LlamaGgufTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("llama-gguf-").FullName;

    /// <summary>Nothing is a power of two or a default: 3 layers, 96 dims, 6 heads / 2 KV heads, FFN 160, context 384, 1201 tokens.</summary>
    private static readonly LlamaShape OddShape = new(Vocab: 1201, Dim: 96, Layers: 3, Heads: 6, KvHeads: 2, Ffn: 160, Context: 384)
    {
        RopeFreqBase = 5000f,
        RmsEpsilon = 1e-6f,
    };

    [Fact]
    public void OddShapedF16Model_LoadsWithTheShapeAndVocabularyWritten()
    {
        var path = Path.Combine(_directory, "odd.gguf");
        var vocabulary = SentencePieceVocabulary.Synthetic(OddShape.Vocab);
        LlamaGguf.Create("odd-shape", OddShape, vocabulary, GgmlType.F16, LlamaGguf.RandomWeights(OddShape, seed: 3, scale: 0.05f, silentToken: 2)).WriteTo(path);

        LlamaNative.EnsureConfigured();
        using var weights = LLamaWeights.LoadFromFile(new ModelParams(path) { GpuLayerCount = 0 });
        var model = weights.NativeHandle;
        Assert.Equal(OddShape.Context, weights.ContextSize);
        Assert.Equal(OddShape.Dim, weights.EmbeddingSize);
        Assert.Equal(OddShape.Layers, model.LayerCount);
        Assert.Equal(OddShape.Heads, model.HeadCount);
        Assert.Equal(OddShape.KvHeads, model.KVHeadCount);
        Assert.Equal((ulong)OddShape.ParameterCount, weights.ParameterCount);
        Assert.Equal(LLamaFtype.MOSTLY_F16, model.FileType);
        Assert.Equal(OddShape.RopeFreqBase, float.Parse(weights.Metadata["llama.rope.freq_base"], CultureInfo.InvariantCulture));
        Assert.Equal(OddShape.RmsEpsilon, float.Parse(weights.Metadata["llama.attention.layer_norm_rms_epsilon"], CultureInfo.InvariantCulture), 1e-9f);
        Assert.Equal("odd-shape", weights.Metadata["general.name"]);
        Assert.Equal("160", weights.Metadata["llama.feed_forward_length"]);
        Assert.Equal(1201, weights.Vocab.Count);
        Assert.Equal(LLamaVocabType.SentencePiece, weights.Vocab.Type);
        Assert.Equal(1, (int)weights.Vocab.BOS!.Value);
        Assert.Equal(2, (int)weights.Vocab.EOS!.Value);

        // Byte-fallback tokens: the newline is <0x0A>. The filler pieces follow them: "▁" is 259, "!" 260,
        // and "ab" after the space llama.cpp puts in front is one piece, "▁ab".
        Assert.Equal(3 + 0x0A, (int)weights.Vocab.Newline!.Value);
        var tokens = weights.Tokenize("ab!", add_bos: true, special: false, System.Text.Encoding.UTF8);
        Assert.Equal([1, Id(vocabulary, "\u2581ab"), 260], tokens.Select(static t => (int)t));

        // Random weights keep the activations finite; the silent token's output row is zero, so its logit is exactly 0 and not the largest.
        using var context = weights.CreateContext(new ModelParams(path) { ContextSize = 64, BatchSize = 64 });
        var batch = new LLamaBatch();
        for (var i = 0; i < tokens.Length; i++)
        {
            batch.Add(tokens[i], i, LLamaSeqId.Zero, logits: i == tokens.Length - 1);
        }
        Assert.Equal(DecodeResult.Ok, context.Decode(batch));
        var logits = context.NativeHandle.GetLogitsIth(tokens.Length - 1).ToArray();
        Assert.All(logits, static l => Assert.True(float.IsFinite(l)));
        Assert.Equal(0f, logits[2]);
        Assert.True(logits.Max() > 0);
        Assert.True(logits.Distinct().Count() > OddShape.Vocab / 2, "the logits vary with the token");
    }

    [Fact]
    public void F16Model_QuantizesToQ4KM_AndKeepsItsShape()
    {
        // k-quants work on rows of 256, so the row lengths (Dim, Ffn, KV dim) are multiples of it.
        var shape = new LlamaShape(Vocab: 320, Dim: 512, Layers: 2, Heads: 4, KvHeads: 2, Ffn: 768, Context: 256);
        var f16 = Path.Combine(_directory, "small-f16.gguf");
        var q4 = Path.Combine(_directory, "small-q4_k_m.gguf");
        LlamaGguf.Create("small", shape, SentencePieceVocabulary.Synthetic(shape.Vocab), GgmlType.F16, LlamaGguf.RandomWeights(shape, seed: 5, scale: 0.05f)).WriteTo(f16);

        LlamaNative.EnsureLoaded();
        Assert.True(LLamaQuantizer.Quantize(f16, q4, LLamaFtype.MOSTLY_Q4_K_M, nthread: 2));

        using var weights = LLamaWeights.LoadFromFile(new ModelParams(q4) { GpuLayerCount = 0 });
        Assert.Equal(LLamaFtype.MOSTLY_Q4_K_M, weights.NativeHandle.FileType);
        Assert.Equal(shape.Layers, weights.NativeHandle.LayerCount);
        Assert.Equal(shape.Dim, weights.EmbeddingSize);
        Assert.Equal((ulong)shape.ParameterCount, weights.ParameterCount);
        Assert.Equal(shape.Vocab, weights.Vocab.Count);
        Assert.True(new FileInfo(q4).Length < new FileInfo(f16).Length / 2, "Q4_K_M is under half the size of F16");
    }

    [Fact]
    public void SyntheticVocabulary_IsLlamaShapedAndUnique()
    {
        var vocabulary = SentencePieceVocabulary.Synthetic(32_000);
        Assert.Equal(32_000, vocabulary.Tokens.Count);
        Assert.Equal(["<unk>", "<s>", "</s>", "<0x00>"], vocabulary.Tokens.Take(4));
        Assert.Equal("<0xFF>", vocabulary.Tokens[258]);
        Assert.Equal(vocabulary.Tokens.Count, vocabulary.Tokens.Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(
            [SentencePieceVocabulary.UnknownType, SentencePieceVocabulary.Control, SentencePieceVocabulary.Control, SentencePieceVocabulary.Byte],
            vocabulary.TokenTypes.Take(4));
        Assert.All(vocabulary.TokenTypes.Skip(259), static type => Assert.Equal(SentencePieceVocabulary.Normal, type));
        Assert.Contains("\u2581xyz", vocabulary.Tokens);
        Assert.Throws<ArgumentOutOfRangeException>(() => SentencePieceVocabulary.Synthetic(259));
        Assert.Throws<ArgumentOutOfRangeException>(() => SentencePieceVocabulary.Synthetic(40_000));
    }

    [Fact]
    public void Writer_AlignsTheDataAndEveryTensorTo32Bytes()
    {
        var writer = new GgufWriter()
            .AddString("general.architecture", "none")
            .AddTensor("a", [3], GgmlType.F32, [1f, 2f, 3f])
            .AddTensor("b", [5], GgmlType.F16, [1f, 2f, 3f, 4f, 5f]);
        using var stream = new MemoryStream();
        writer.WriteTo(stream);
        var bytes = stream.ToArray();
        Assert.Equal(64, writer.DataBytes);
        Assert.Equal(0, bytes.Length % GgufWriter.Alignment);
        var data = bytes.Length - 64;
        Assert.Equal(1f, BitConverter.ToSingle(bytes, data));
        Assert.Equal(3f, BitConverter.ToSingle(bytes, data + 8));
        Assert.Equal((Half)5f, BitConverter.ToHalf(bytes, data + 32 + 8));
        Assert.Throws<ArgumentException>(() => writer.AddTensor("a", [1], GgmlType.F32, [0f]));
        Assert.Throws<ArgumentException>(() => writer.AddTensor("c", [2], GgmlType.F32, [0f]));
    }

    private static int Id(SentencePieceVocabulary vocabulary, string piece) => vocabulary.Tokens.ToList().IndexOf(piece);

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
