using System.Text;
using Gateway.Models;
using Gateway.Text;
using TritonEmulator.Tests.Models.TensorRtLlm;
using TritonEmulator.Tests.Models.Vllm;

namespace Gateway.Tests.Text;

/// <summary>The catalogue's <c>sentencepiece:&lt;path&gt;</c> tokenizer, on the tiny llama vocabulary written as a tokenizer.model.</summary>
public sealed class SentencePieceTextTokenizerTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("spm-").FullName;

    private string ModelPath => Path.Combine(_folder, "tokenizer.model");

    public SentencePieceTextTokenizerTests() => TinyTrtLlmRepository.WriteSentencePieceModel(TinyLlama.Create(), ModelPath);

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Encode_AddsBos_AndMergesTheDummyPrefixIntoTheFirstPiece_BytesFallBack()
    {
        var tokenizer = new TextTokenizers().Get("sentencepiece:" + ModelPath);

        // <s>, "▁a", "b", "c"; "\n" has no piece: its byte <0x0A> (id 3 + 0x0A).
        Assert.Equal([1, 330, 261, 262], tokenizer.Encode("abc"));
        Assert.Equal([1, 330, 261, 262, 3 + 0x0A], tokenizer.Encode("abc\n"));
        Assert.Equal(5, tokenizer.CountTokens("abc\n"));
    }

    [Fact]
    public void Detokenizer_TurnsPiecesBackIntoText_SpacesAndBytesIncluded()
    {
        var detokenizer = new TextTokenizers().Get("sentencepiece:" + ModelPath).CreateDetokenizer();
        var text = new StringBuilder();

        foreach (var id in (int[])[1, 333, 334, 3 + 0xC3, 3 + 0xA9, 2])
        {
            detokenizer.Append(id, text);
        }
        detokenizer.Flush(text);

        Assert.Equal(" d eé", text.ToString());
    }

    [Fact]
    public void Catalogue_ASentencePieceTokenizerThatIsNotThere_FailsValidationNamingTheKey()
    {
        var options = new ModelCatalogOptions();
        options.Models["m"] = new ModelOptions { TritonModel = "ensemble", Contract = "tensorrtllm", Tokenizer = "sentencepiece:" + Path.Combine(_folder, "missing.model") };
        options.Models["ok"] = new ModelOptions { TritonModel = "ensemble", Contract = "tensorrtllm", Tokenizer = "sentencepiece:" + ModelPath };

        var result = new ModelCatalogOptionsValidator().Validate(null, options);

        Assert.True(result.Failed);
        var failure = Assert.Single(result.Failures!);
        Assert.StartsWith("Gateway:Models:m:Tokenizer 'sentencepiece:", failure);
        Assert.EndsWith("no SentencePiece model at that path.", failure);
    }
}
