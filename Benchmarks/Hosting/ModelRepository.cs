using System.Text.RegularExpressions;

namespace Benchmarks.Hosting;

/// <summary>
/// A temporary Triton model repository made from the repository's <c>models/fastertransformer</c>:
/// <c>fastertransformer</c> with the zero-latency profile (the gateway is what is measured) and
/// <c>fastertransformer_slow</c>, one decode step per <c>idleStep</c> (streams that stay open and
/// idle). Both batch in flight with room for every benchmark stream (<c>max_batch_size</c> and the
/// KV capacity at least the idle scenario's stream count, so all of them are in one in-flight batch
/// at once), and their queues never refuse.
/// </summary>
internal sealed partial class ModelRepository : IDisposable
{
    public const string FastModel = "fastertransformer";
    public const string SlowModel = "fastertransformer_slow";

    private ModelRepository(string path) => Path = path;

    public string Path { get; }

    public static ModelRepository Create(TimeSpan idleStep, int streams)
    {
        var maxBatch = Math.Max(16_384, streams);
        var source = System.IO.Path.Combine(FindModels(), "fastertransformer");
        var config = File.ReadAllText(System.IO.Path.Combine(source, "config.pbtxt"));
        var root = Directory.CreateTempSubdirectory("llm-gateway-bench-models-").FullName;
        Write(root, FastModel, config, stepMicros: 0, maxBatch);
        Write(root, SlowModel, config, stepMicros: (long)idleStep.TotalMicroseconds, maxBatch);
        return new ModelRepository(root);
    }

    /// <summary>
    /// One <see cref="FastModel"/> whose decode step takes <paramref name="step"/> (in flight, queue
    /// that never refuses): streams stay open long enough for a fault to hit them (the faults scenario).
    /// </summary>
    public static ModelRepository CreatePaced(TimeSpan step)
    {
        var source = System.IO.Path.Combine(FindModels(), "fastertransformer");
        var config = File.ReadAllText(System.IO.Path.Combine(source, "config.pbtxt"));
        var root = Directory.CreateTempSubdirectory("llm-gateway-bench-faults-").FullName;
        Write(root, FastModel, config, stepMicros: (long)step.TotalMicroseconds, maxBatch: 16_384);
        return new ModelRepository(root);
    }

    private static void Write(string root, string name, string config, long stepMicros, int maxBatch)
    {
        var folder = Directory.CreateDirectory(System.IO.Path.Combine(root, name));
        Directory.CreateDirectory(System.IO.Path.Combine(folder.FullName, "1"));
        config = NameLine().Replace(config, $"name: \"{name}\"");
        config = MaxBatch().Replace(config, $"max_batch_size: {maxBatch}");
        config = QueueDelay().Replace(config, "max_queue_delay_microseconds: 0");
        config = QueueSize().Replace(config, $"max_queue_size: {Math.Max(100_000, 10 * maxBatch)}");
        config = Parameter("emulator_profile").Replace(config, Value("zero-latency"));
        config = Parameter("emulator_batching_mode").Replace(config, Value("inflight"));
        config += $$"""

            parameters {
              key: "emulator_step_base_us"
              value: { string_value: "{{stepMicros}}" }
            }
            parameters {
              key: "emulator_kv_capacity_tokens"
              value: { string_value: "1000000000" }
            }

            """;
        File.WriteAllText(System.IO.Path.Combine(folder.FullName, "config.pbtxt"), config);
    }

    private static Regex Parameter(string key) => new($"(key: \"{key}\"\\s*value: \\{{ string_value: )\"[^\"]*\"", RegexOptions.CultureInvariant);

    private static string Value(string value) => $"$1\"{value}\"";

    [GeneratedRegex("^name: \"[^\"]*\"", RegexOptions.Multiline)]
    private static partial Regex NameLine();

    [GeneratedRegex(@"max_batch_size: \d+")]
    private static partial Regex MaxBatch();

    [GeneratedRegex(@"max_queue_delay_microseconds: \d+")]
    private static partial Regex QueueDelay();

    [GeneratedRegex(@"max_queue_size: \d+")]
    private static partial Regex QueueSize();

    public static string FindModels()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(System.IO.Path.Combine(dir.FullName, "models", "fastertransformer", "config.pbtxt")))
                {
                    return System.IO.Path.Combine(dir.FullName, "models");
                }
            }
        }
        throw new DirectoryNotFoundException("models/fastertransformer not found above " + AppContext.BaseDirectory);
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // a temp folder: best effort
        }
    }
}
