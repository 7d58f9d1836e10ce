using System.Text;
using LLama;
using LLama.Common;
using LLama.Exceptions;
using Microsoft.ML.Tokenizers;
using TritonEmulator.Models.TensorRtLlm;
using TritonEmulator.Models.Text;
using TritonEmulator.Models.Vllm;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models.Python;

/// <summary>The tokenizer TensorRT-LLM's preprocessing and postprocessing models use (model.py's <c>self.tokenizer</c>).</summary>
internal interface ITrtLlmTokenizer : IDisposable
{
    /// <summary>The end id when the request gives none (the tokenizer's end of sequence).</summary>
    int EndId { get; }

    /// <summary>Token ids of <paramref name="text"/>; <paramref name="addSpecialTokens"/> adds the BOS the tokenizer asks for.</summary>
    int[] Encode(string text, bool addSpecialTokens);

    /// <summary>The text of <paramref name="ids"/> decoded on their own; special tokens left out when <paramref name="skipSpecialTokens"/>.</summary>
    string Decode(List<int> ids, bool skipSpecialTokens);
}

/// <summary>A Hugging Face byte-level BPE tokenizer (GPT-2 BPE for GPT-J); its only special token is <c>&lt;|endoftext|&gt;</c>.</summary>
internal sealed class BpeTrtLlmTokenizer(Tokenizer tokenizer) : ITrtLlmTokenizer
{
    public int EndId => TokenLanguageModel.EndOfText;

    public int[] Encode(string text, bool addSpecialTokens) => [.. tokenizer.EncodeToIds(text)];

    public string Decode(List<int> ids, bool skipSpecialTokens)
    {
        if (skipSpecialTokens)
        {
            ids.RemoveAll(static id => id == TokenLanguageModel.EndOfText);
        }
        return ids.Count == 0 ? "" : tokenizer.Decode(ids) ?? "";
    }

    public void Dispose()
    {
    }
}

/// <summary>
/// The vocabulary of a GGUF file (llama.cpp's tokenizer, loaded without the weights), so that
/// preprocessing and postprocessing tokenize exactly as the <c>tensorrt_llm</c> model that runs the
/// same GGUF on llama.cpp.
/// </summary>
internal sealed class GgufTrtLlmTokenizer : ITrtLlmTokenizer
{
    private readonly LLamaWeights _vocabulary;

    private GgufTrtLlmTokenizer(LLamaWeights vocabulary)
    {
        _vocabulary = vocabulary;
        EndId = vocabulary.Vocab.EOS is { } eos ? (int)eos : 0;
    }

    public int EndId { get; }

    public static GgufTrtLlmTokenizer Load(string path)
    {
        LlamaNative.EnsureConfigured();
        try
        {
            return new GgufTrtLlmTokenizer(LLamaWeights.LoadFromFile(new ModelParams(path) { VocabOnly = true, GpuLayerCount = 0 }));
        }
        catch (Exception exception) when (exception is LoadWeightsFailedException or RuntimeError or IOException or ArgumentException)
        {
            throw new ModelLoadException($"failed to load the vocabulary of GGUF file '{path}': {exception.Message}");
        }
    }

    public int[] Encode(string text, bool addSpecialTokens)
    {
        var tokens = _vocabulary.Tokenize(text, add_bos: addSpecialTokens, special: false, Encoding.UTF8);
        var ids = new int[tokens.Length];
        for (var i = 0; i < tokens.Length; i++)
        {
            ids[i] = (int)tokens[i];
        }
        return ids;
    }

    public string Decode(List<int> ids, bool skipSpecialTokens)
    {
        var decoder = new StreamingTokenDecoder(Encoding.UTF8, _vocabulary) { DecodeSpecialTokens = !skipSpecialTokens };
        foreach (var id in ids)
        {
            decoder.Add(id);
        }
        return decoder.Read();
    }

    public void Dispose() => _vocabulary.Dispose();
}
