using Google.Protobuf;
using TritonEmulator.Tests.Models.Vllm;

namespace TritonEmulator.Tests.Models.TensorRtLlm;

/// <summary>
/// The shipped <c>models-trtllm/</c> repository copied to a temporary folder with the tiny llama GGUF
/// as its engine: <c>gpt_model_path</c> and both <c>tokenizer_dir</c>s name <c>engine/</c>, which holds
/// <c>tiny.gguf</c>, so <c>tensorrt_llm</c> runs on llama.cpp and pre/postprocessing use the GGUF's
/// vocabulary. Small engine limits: <c>max_batch_size</c> 4, max input 128, max sequence 256, KV cache
/// 2048 tokens in blocks of 16 (128 blocks). Everything else is the shipped configuration. The same
/// vocabulary is also written as a SentencePiece <c>engine/tokenizer.model</c>, the file a Llama
/// checkpoint's Hugging Face tokenizer folder holds, for a gateway that counts prompts with it.
/// </summary>
internal sealed class TinyTrtLlmRepository : IDisposable
{
    public const int KvBlocks = 128;
    public const int TokensPerBlock = 16;
    public const int MaxBatchSize = 4;

    /// <param name="maxInputLength">The engine's max input (prompt) length.</param>
    /// <param name="maxSequenceLength">The engine's max sequence length (prompt + output).</param>
    public TinyTrtLlmRepository(string shippedRepository, int maxInputLength = 128, int maxSequenceLength = 256)
    {
        Root = Directory.CreateTempSubdirectory("trtllm-gguf-").FullName;
        foreach (var file in Directory.GetFiles(shippedRepository, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(Root, Path.GetRelativePath(shippedRepository, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        var engine = Path.Combine(Root, "engine");
        Directory.CreateDirectory(engine);
        var tiny = TinyLlama.Create();
        tiny.WriteGguf(Path.Combine(engine, "tiny.gguf"));
        SentencePieceModel = Path.Combine(engine, "tokenizer.model");
        WriteSentencePieceModel(tiny, SentencePieceModel);
        Edit("tensorrt_llm", config => config
            .Replace("max_batch_size: 64", $"max_batch_size: {MaxBatchSize}")
            .Replace("preferred_batch_size: [ 64 ]", $"preferred_batch_size: [ {MaxBatchSize} ]")
            .Replace("\"/engines/gpt-j-6b/engine\"", Quote(engine))
            .Replace("\"61440\"", $"\"{KvBlocks * TokensPerBlock}\"")
            .Replace("key: \"emulator_max_input_len\" value: { string_value: \"1024\" }", $"key: \"emulator_max_input_len\" value: {{ string_value: \"{maxInputLength}\" }}")
            .Replace("key: \"emulator_max_seq_len\" value: { string_value: \"2048\" }", $"key: \"emulator_max_seq_len\" value: {{ string_value: \"{maxSequenceLength}\" }}")
            .Replace("key: \"emulator_tokens_per_block\" value: { string_value: \"64\" }", $"key: \"emulator_tokens_per_block\" value: {{ string_value: \"{TokensPerBlock}\" }}"));
        foreach (var model in (string[])["preprocessing", "postprocessing"])
        {
            Edit(model, config => config.Replace("\"/engines/gpt-j-6b/tokenizer\"", Quote(engine)).Replace("\"/engines/gpt-j-6b/engine\"", Quote(engine)));
        }
        // A llama deployment's preprocessing adds the BOS the tokenizer asks for.
        Edit("preprocessing", config => config.Replace("key: \"add_special_tokens\" value: { string_value: \"False\" }", "key: \"add_special_tokens\" value: { string_value: \"True\" }"));
    }

    public string Root { get; }

    /// <summary>The tiny vocabulary as a SentencePiece model (BPE with byte fallback, a dummy prefix, whitespace kept).</summary>
    public string SentencePieceModel { get; }

    /// <summary>
    /// sentencepiece_model.proto's <c>ModelProto</c>: pieces (1: piece, score, type), trainer_spec (2:
    /// model_type BPE, byte_fallback, unk/bos/eos/pad ids) and normalizer_spec (3: identity, add_dummy_prefix,
    /// remove_extra_whitespaces off, escape_whitespaces), as llama.cpp's SPM tokenizer reads the same vocabulary.
    /// </summary>
    internal static void WriteSentencePieceModel(TinyLlama model, string path)
    {
        static ByteString Message(Action<CodedOutputStream> write)
        {
            using var buffer = new MemoryStream();
            var stream = new CodedOutputStream(buffer);
            write(stream);
            stream.Flush();
            return ByteString.CopyFrom(buffer.ToArray());
        }
        using var file = File.Create(path);
        var output = new CodedOutputStream(file);
        for (var id = 0; id < model.Tokens.Length; id++)
        {
            var (piece, score, type) = (model.Tokens[id], model.Scores[id], model.TokenTypes[id]);
            output.WriteTag(1, WireFormat.WireType.LengthDelimited);
            output.WriteBytes(Message(s =>
            {
                s.WriteTag(1, WireFormat.WireType.LengthDelimited);
                s.WriteString(piece);
                s.WriteTag(2, WireFormat.WireType.Fixed32);
                s.WriteFloat(score);
                s.WriteTag(3, WireFormat.WireType.Varint);
                s.WriteEnum(type);
            }));
        }
        output.WriteTag(2, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(Message(s =>
        {
            s.WriteTag(3, WireFormat.WireType.Varint);
            s.WriteEnum(2); // BPE
            s.WriteTag(35, WireFormat.WireType.Varint);
            s.WriteBool(true);
            foreach (var (field, value) in new[] { (40, TinyLlama.Unknown), (41, TinyLlama.Bos), (42, TinyLlama.Eos), (43, -1) })
            {
                s.WriteTag(field, WireFormat.WireType.Varint);
                s.WriteInt32(value);
            }
        }));
        output.WriteTag(3, WireFormat.WireType.LengthDelimited);
        output.WriteBytes(Message(s =>
        {
            s.WriteTag(1, WireFormat.WireType.LengthDelimited);
            s.WriteString("identity");
            s.WriteTag(3, WireFormat.WireType.Varint);
            s.WriteBool(true);
            s.WriteTag(4, WireFormat.WireType.Varint);
            s.WriteBool(false);
            s.WriteTag(5, WireFormat.WireType.Varint);
            s.WriteBool(true);
        }));
        output.Flush();
    }

    private static string Quote(string path) => "\"" + path.Replace("\\", "\\\\") + "\"";

    private void Edit(string model, Func<string, string> change)
    {
        var path = Path.Combine(Root, model, "config.pbtxt");
        var before = File.ReadAllText(path);
        var after = change(before);
        if (after == before)
        {
            throw new InvalidOperationException($"{model}/config.pbtxt did not change");
        }
        File.WriteAllText(path, after);
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}
