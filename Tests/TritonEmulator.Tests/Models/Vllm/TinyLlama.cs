using TritonEmulator.Gguf;

namespace TritonEmulator.Tests.Models.Vllm;

/// <summary>
/// A tiny, deterministic <c>llama</c> model written as GGUF v3 (public spec: ggml-org/ggml docs/gguf.md):
/// 2 layers, 64 dims, 4 heads / 2 KV heads, FFN 128, context 256, all F32, and a SentencePiece-style
/// vocabulary of 356 tokens. Dims 0–31 of the residual stream carry a one-hot "what letter was
/// this" code that the attention and FFN blocks never write to (their output rows 0–31 are zero);
/// dims 32–63 carry seeded random values that every block reads and writes, so the whole
/// transformer runs and shapes the logits. <c>output.weight</c> maps letter L to the token
/// <c>▁(L+1)</c>, <c>z</c> to <c>&lt;/s&gt;</c> and anything else to <c>▁a</c>, so greedy decoding
/// continues the alphabet: "abc" → " d e f … z" then end of sequence.
/// </summary>
internal sealed class TinyLlama
{
    public const int Vocab = 356;
    public const int Dim = 64;
    public const int Layers = 2;
    public const int Heads = 4;
    public const int KvHeads = 2;
    public const int HeadDim = Dim / Heads;
    public const int KvDim = KvHeads * HeadDim;
    public const int Ffn = 128;
    public const int Context = 256;
    public const float Epsilon = 1e-5f;
    public const float RopeBase = 10000f;

    public const int Unknown = 0;
    public const int Bos = 1;
    public const int Eos = 2;
    private const int FirstByte = 3;
    private const int Space = 259;
    private const int FirstLower = 260;
    private const int FirstUpper = 286;
    private const int FirstDigit = 312;
    private const int FirstPunctuation = 322;
    private const int FirstSpaced = 330;
    private const string Punctuation = ".,!?'-:;";
    private const float Big = 4f;

    /// <summary>The text greedy decoding produces after a prompt ending in "c".</summary>
    public const string AfterC = " d e f g h i j k l m n o p q r s t u v w x y z";

    private TinyLlama()
    {
    }

    public string[] Tokens { get; } = new string[Vocab];
    public float[] Scores { get; } = new float[Vocab];
    public int[] TokenTypes { get; } = new int[Vocab];

    public float[] TokenEmbedding { get; } = new float[Vocab * Dim];
    public LayerWeights[] Layer { get; } = new LayerWeights[Layers];
    public float[] OutputNorm { get; } = new float[Dim];
    public float[] Output { get; } = new float[Vocab * Dim];

    public sealed class LayerWeights
    {
        public float[] AttnNorm { get; } = new float[Dim];
        public float[] Q { get; } = new float[Dim * Dim];
        public float[] K { get; } = new float[KvDim * Dim];
        public float[] V { get; } = new float[KvDim * Dim];
        public float[] O { get; } = new float[Dim * Dim];
        public float[] FfnNorm { get; } = new float[Dim];
        public float[] Gate { get; } = new float[Ffn * Dim];
        public float[] Up { get; } = new float[Ffn * Dim];
        public float[] Down { get; } = new float[Dim * Ffn];
    }

    public static TinyLlama Create(int seed = 7)
    {
        var random = new Random(seed);
        float Noise(float scale) => (float)((random.NextDouble() * 2 - 1) * scale);
        var model = new TinyLlama();
        model.BuildVocabulary();
        for (var token = 0; token < Vocab; token++)
        {
            var row = model.TokenEmbedding.AsSpan(token * Dim, Dim);
            row[ContentDim(model.Tokens[token], token)] = 1f;
            for (var d = 32; d < Dim; d++)
            {
                row[d] = Noise(0.1f);
            }
        }
        for (var l = 0; l < Layers; l++)
        {
            var layer = model.Layer[l] = new LayerWeights();
            Fill(layer.AttnNorm, () => 1f + Noise(0.1f));
            Fill(layer.Q, () => Noise(0.15f));
            Fill(layer.K, () => Noise(0.15f));
            Fill(layer.V, () => Noise(0.15f));
            FillRowsFrom(layer.O, Dim, 32, () => Noise(0.1f));
            Fill(layer.FfnNorm, () => 1f + Noise(0.1f));
            Fill(layer.Gate, () => Noise(0.15f));
            Fill(layer.Up, () => Noise(0.15f));
            FillRowsFrom(layer.Down, Ffn, 32, () => Noise(0.1f));
        }
        Fill(model.OutputNorm, () => 1f + Noise(0.05f));
        for (var token = 0; token < Vocab; token++)
        {
            for (var d = 32; d < Dim; d++)
            {
                model.Output[token * Dim + d] = Noise(0.05f);
            }
        }
        for (var letter = 0; letter < 26; letter++)
        {
            var next = letter == 25 ? Eos : FirstSpaced + letter + 1;
            model.Output[next * Dim + letter] = Big;
        }
        for (var d = 26; d < 32; d++)
        {
            model.Output[FirstSpaced * Dim + d] = Big;
        }
        return model;
    }

    private static void Fill(float[] values, Func<float> next)
    {
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = next();
        }
    }

    /// <summary>Random values in output rows 32.. only: the block never writes the letter code.</summary>
    private static void FillRowsFrom(float[] matrix, int inputs, int firstRow, Func<float> next)
    {
        for (var row = firstRow; row < Dim; row++)
        {
            for (var i = 0; i < inputs; i++)
            {
                matrix[row * inputs + i] = next();
            }
        }
    }

    private void BuildVocabulary()
    {
        Set(Unknown, "<unk>", 0, 2);
        Set(Bos, "<s>", 0, 3);
        Set(Eos, "</s>", 0, 3);
        for (var b = 0; b < 256; b++)
        {
            Set(FirstByte + b, $"<0x{b:X2}>", 0, 6);
        }
        Set(Space, "\u2581", -1, 1);
        for (var i = 0; i < 26; i++)
        {
            Set(FirstLower + i, ((char)('a' + i)).ToString(), -2, 1);
            Set(FirstUpper + i, ((char)('A' + i)).ToString(), -2, 1);
            Set(FirstSpaced + i, "\u2581" + (char)('a' + i), -1, 1);
        }
        for (var i = 0; i < 10; i++)
        {
            Set(FirstDigit + i, ((char)('0' + i)).ToString(), -2, 1);
        }
        for (var i = 0; i < Punctuation.Length; i++)
        {
            Set(FirstPunctuation + i, Punctuation[i].ToString(), -2, 1);
        }

        void Set(int id, string text, float score, int type)
        {
            Tokens[id] = text;
            Scores[id] = score;
            TokenTypes[id] = type;
        }
    }

    private static int ContentDim(string text, int token)
    {
        var last = text[^1];
        if (token >= FirstLower && char.IsAsciiLetter(last))
        {
            return char.ToLowerInvariant(last) - 'a';
        }
        return token switch
        {
            < FirstByte => 27,
            < Space => 28,
            Space => 29,
            >= FirstDigit and < FirstPunctuation => 30,
            _ => 31,
        };
    }

    /// <summary>The model's hyperparameters.</summary>
    public static LlamaShape Shape { get; } = new(Vocab, Dim, Layers, Heads, KvHeads, Ffn, Context) { RopeFreqBase = RopeBase, RmsEpsilon = Epsilon };

    /// <summary>Writes the model as a GGUF v3 file, all F32.</summary>
    public void WriteGguf(string path)
    {
        var vocabulary = new SentencePieceVocabulary(Tokens, Scores, TokenTypes, Bos, Eos, Unknown);
        LlamaGguf.Create("tiny-alphabet", Shape, vocabulary, GgmlType.F32, tensor => GgufWriter.Values(Values(tensor))).WriteTo(path);
    }

    private float[] Values(LlamaTensor tensor) => tensor.Role switch
    {
        LlamaTensorRole.TokenEmbedding => TokenEmbedding,
        LlamaTensorRole.AttentionNorm => Layer[tensor.Layer].AttnNorm,
        LlamaTensorRole.Query => Layer[tensor.Layer].Q,
        LlamaTensorRole.Key => Layer[tensor.Layer].K,
        LlamaTensorRole.Value => Layer[tensor.Layer].V,
        LlamaTensorRole.AttentionOutput => Layer[tensor.Layer].O,
        LlamaTensorRole.FfnNorm => Layer[tensor.Layer].FfnNorm,
        LlamaTensorRole.Gate => Layer[tensor.Layer].Gate,
        LlamaTensorRole.Up => Layer[tensor.Layer].Up,
        LlamaTensorRole.Down => Layer[tensor.Layer].Down,
        LlamaTensorRole.OutputNorm => OutputNorm,
        LlamaTensorRole.Output => Output,
        _ => throw new ArgumentOutOfRangeException(nameof(tensor), tensor.Role, null),
    };
}
