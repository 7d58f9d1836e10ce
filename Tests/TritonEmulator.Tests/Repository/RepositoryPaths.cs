namespace TritonEmulator.Tests.Repository;

internal static class RepositoryPaths
{
    /// <summary>The repository root: the first folder above the test binaries that holds Aspire.sln.</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string ModelsFolder => Path.Combine(RepoRoot, "models");

    /// <summary>The shipped TensorRT-LLM repository (inflight_batcher_llm layout).</summary>
    public static string TrtLlmModelsFolder => Path.Combine(RepoRoot, "models-trtllm");

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Aspire.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No folder above '{AppContext.BaseDirectory}' holds Aspire.sln.");
    }
}

/// <summary>A temporary folder tree for one test, deleted on dispose.</summary>
internal sealed class TempRepository : IDisposable
{
    public TempRepository()
    {
        Root = Path.Combine(Path.GetTempPath(), "triton-repo-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Root);
    }

    public string Root { get; }

    public TempRepository Model(string folder, string? config, params string[] subfolders)
    {
        var path = Path.Combine(Root, folder);
        Directory.CreateDirectory(path);
        if (config is not null)
        {
            File.WriteAllText(Path.Combine(path, "config.pbtxt"), config);
        }

        foreach (var sub in subfolders)
        {
            Directory.CreateDirectory(Path.Combine(path, sub));
        }

        return this;
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);
}
