using System.Globalization;
using System.Text.RegularExpressions;
using Benchmarks.Hosting;

namespace Benchmarks.Prefix;

/// <summary>
/// A temporary copy of <c>models-trtllm/</c> for the prefix scenario: the same ensemble, A100 timing
/// (GPT-J-6B: prefill 25 ms + 50 µs per computed token, decode step 22 ms + 0.35 ms per sequence),
/// <c>enable_kv_cache_reuse: true</c>, 64-token blocks, but room for long chats (max_input_len 4096,
/// max_seq_len 4608) and a KV pool of <c>kvTokens</c> tokens shared by running sequences and reusable blocks.
/// </summary>
internal sealed partial class PrefixRepository : IDisposable
{
    private PrefixRepository(string path) => Path = path;

    public string Path { get; }

    public static PrefixRepository Create(int kvTokens)
    {
        var source = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(ModelRepository.FindModels())!, "models-trtllm");
        var root = Directory.CreateTempSubdirectory("llm-gateway-bench-prefix-").FullName;
        foreach (var model in new[] { "ensemble", "preprocessing", "postprocessing", "tensorrt_llm" })
        {
            var folder = Directory.CreateDirectory(System.IO.Path.Combine(root, model));
            Directory.CreateDirectory(System.IO.Path.Combine(folder.FullName, "1"));
            var config = File.ReadAllText(System.IO.Path.Combine(source, model, "config.pbtxt"));
            // Queues that never refuse: the benchmark measures waiting, not rejections.
            config = QueueSize().Replace(config, "max_queue_size: 100000");
            if (model == "tensorrt_llm")
            {
                config = Set(config, "max_tokens_in_paged_kv_cache", kvTokens.ToString(CultureInfo.InvariantCulture));
                config = Set(config, "enable_kv_cache_reuse", "true");
                config = Set(config, "emulator_max_input_len", "4096");
                config = Set(config, "emulator_max_seq_len", "4608");
                config = Set(config, "emulator_tokens_per_block", "64");
                config = Set(config, "emulator_profile", "a100-gptj-6b");
            }
            File.WriteAllText(System.IO.Path.Combine(folder.FullName, "config.pbtxt"), config);
        }
        return new PrefixRepository(root);
    }

    private static string Set(string config, string key, string value)
    {
        var pattern = new Regex("parameters:?\\s*\\{\\s*key:\\s*\"" + Regex.Escape(key) + "\"\\s*value:\\s*\\{\\s*string_value:\\s*\"[^\"]*\"\\s*\\}\\s*\\}");
        var replacement = $"parameters: {{ key: \"{key}\" value: {{ string_value: \"{value}\" }} }}";
        return pattern.IsMatch(config) ? pattern.Replace(config, replacement, 1) : config + "\n" + replacement + "\n";
    }

    [GeneratedRegex(@"max_queue_size:\s*\d+")]
    private static partial Regex QueueSize();

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
