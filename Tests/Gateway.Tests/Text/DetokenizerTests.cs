using System.Text;
using Gateway.Text;

namespace Gateway.Tests.Text;

public sealed class DetokenizerTests
{
    private static readonly ITextTokenizer Gpt2 = new TextTokenizers().Get(TextTokenizers.Gpt2);

    [Fact]
    public void Encode_KnownSentence_GivesGpt2Ids()
    {
        Assert.Equal([464, 2068, 7586, 21831, 318], Gpt2.Encode("The quick brown fox is"));
    }

    [Fact]
    public void Append_EmojiSplitAcrossTokens_NeverEmitsBrokenUtf8()
    {
        var ids = Gpt2.Encode("Hi 🦊!");
        var detokenizer = Gpt2.CreateDetokenizer();
        var emitted = new List<string>();
        var output = new StringBuilder();
        foreach (var id in ids)
        {
            detokenizer.Append(id, output);
            emitted.Add(output.ToString());
            output.Clear();
        }
        detokenizer.Flush(output);
        emitted.Add(output.ToString());

        // The fox emoji takes more than one token, so some ids emit nothing until it is complete.
        Assert.True(ids.Count > 3, $"expected the emoji to span tokens, got {ids.Count} ids");
        Assert.Contains(emitted, e => e.Length == 0);
        Assert.All(emitted, piece => Assert.DoesNotContain('\uFFFD', piece));
        Assert.All(emitted, piece => Assert.False(piece.Length > 0 && char.IsHighSurrogate(piece[^1]), "a piece ended inside a surrogate pair"));
        Assert.Equal("Hi 🦊!", string.Concat(emitted));
    }

    [Fact]
    public void Append_MultilingualText_RoundTripsTokenByToken()
    {
        const string text = "naïve café — 日本語のテキスト, Ελληνικά 👍🏽 done";
        var detokenizer = Gpt2.CreateDetokenizer();
        var output = new StringBuilder();
        foreach (var id in Gpt2.Encode(text))
        {
            var before = output.Length;
            detokenizer.Append(id, output);
            Assert.DoesNotContain('\uFFFD', output.ToString(before, output.Length - before));
        }
        detokenizer.Flush(output);
        Assert.Equal(text, output.ToString());
    }

    [Fact]
    public void Flush_UnfinishedCharacterAtEnd_BecomesReplacementCharacter()
    {
        var ids = Gpt2.Encode("🦊");
        var detokenizer = Gpt2.CreateDetokenizer();
        var output = new StringBuilder();
        detokenizer.Append(ids[0], output);
        Assert.Equal("", output.ToString());
        detokenizer.Flush(output);
        Assert.Equal("\uFFFD", output.ToString());
    }

    [Fact]
    public void Append_EndOfTextId_EmitsSpecialTokenText()
    {
        var detokenizer = Gpt2.CreateDetokenizer();
        var output = new StringBuilder();
        detokenizer.Append(50256, output);
        Assert.Equal("<|endoftext|>", output.ToString());
    }
}
