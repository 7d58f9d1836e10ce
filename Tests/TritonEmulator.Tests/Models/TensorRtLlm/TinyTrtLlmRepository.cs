using TritonEmulator.Tests.Models.Vllm;

namespace TritonEmulator.Tests.Models.TensorRtLlm;

/// <summary>
/// The shipped <c>models-trtllm/</c> repository copied to a temporary folder with the tiny llama GGUF
/// as its engine: <c>gpt_model_path</c> and both <c>tokenizer_dir</c>s name <c>engine/</c>, which holds
/// <c>tiny.gguf</c>, so <c>tensorrt_llm</c> runs on llama.cpp and pre/postprocessing use the GGUF's
/// vocabulary. Small engine limits: <c>max_batch_size</c> 4, max input 128, max sequence 256, KV cache
/// 2048 tokens in blocks of 16 (128 blocks). Everything else is the shipped configuration.
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
        TinyLlama.Create().WriteGguf(Path.Combine(engine, "tiny.gguf"));
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
