using System.Globalization;
using Microsoft.ML.Tokenizers;

namespace Gateway.Text;

/// <summary>
/// A SentencePiece model (<c>tokenizer.model</c>, the file Llama-family checkpoints ship in their
/// Hugging Face tokenizer folder) through Microsoft.ML.Tokenizers, BOS added as the model asks: the
/// gateway then counts a prompt exactly as Triton's preprocessing tokenizes it for the engine.
/// Catalogue name: <c>sentencepiece:&lt;path&gt;</c>.
/// </summary>
internal sealed class SentencePieceTextTokenizer : ITextTokenizer
{
    public const string Prefix = "sentencepiece:";

    private readonly SentencePieceTokenizer _tokenizer;

    // Id → the piece's bytes ("▁" is a space, "<0xNN>" one byte); control tokens carry no text. Shared by every stream.
    private readonly Dictionary<int, ReadOnlyMemory<byte>> _bytes;

    private SentencePieceTextTokenizer(string name, SentencePieceTokenizer tokenizer)
    {
        Name = name;
        _tokenizer = tokenizer;
        _bytes = new Dictionary<int, ReadOnlyMemory<byte>>(tokenizer.Vocabulary.Count);
        foreach (var (piece, id) in tokenizer.Vocabulary)
        {
            if (id == tokenizer.BeginningOfSentenceId || id == tokenizer.EndOfSentenceId || id == tokenizer.UnknownId)
            {
                continue;
            }
            _bytes[id] = piece.Length == 6 && piece.StartsWith("<0x", StringComparison.Ordinal) && piece[^1] == '>'
                && byte.TryParse(piece.AsSpan(3, 2), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var b)
                ? new[] { b }
                : System.Text.Encoding.UTF8.GetBytes(piece.Replace('\u2581', ' '));
        }
    }

    public string Name { get; }

    /// <summary>Whether <paramref name="name"/> is <c>sentencepiece:&lt;path&gt;</c> with a path.</summary>
    public static bool IsName(string name) => name.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase) && name.Length > Prefix.Length;

    public static SentencePieceTextTokenizer Load(string name)
    {
        using var model = File.OpenRead(name[Prefix.Length..]);
        return new SentencePieceTextTokenizer(name, LlamaTokenizer.Create(model, addBeginOfSentence: true, addEndOfSentence: false));
    }

    public IReadOnlyList<int> Encode(string text) => _tokenizer.EncodeToIds(text);

    public int CountTokens(string text) => _tokenizer.CountTokens(text);

    public IIncrementalDetokenizer CreateDetokenizer() => new ByteLevelDetokenizer(_bytes, null);
}
