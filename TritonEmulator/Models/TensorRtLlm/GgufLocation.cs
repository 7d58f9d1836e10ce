namespace TritonEmulator.Models.TensorRtLlm;

/// <summary>
/// Where a TensorRT-LLM folder parameter (<c>gpt_model_path</c>, <c>tokenizer_dir</c>) names a GGUF
/// file instead of a TensorRT engine or a Hugging Face tokenizer: the path itself when it is a
/// <c>.gguf</c> file, else the folder's only <c>.gguf</c>. Relative paths are relative to the model's folder.
/// </summary>
internal static class GgufLocation
{
    public static string? Find(string? path, string? modelDirectory)
    {
        if (string.IsNullOrEmpty(path) || path.StartsWith("${", StringComparison.Ordinal))
        {
            return null;
        }
        var full = Path.IsPathRooted(path) || modelDirectory is null ? path : Path.Combine(modelDirectory, path);
        if (File.Exists(full))
        {
            return full.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) ? Path.GetFullPath(full) : null;
        }
        if (!Directory.Exists(full))
        {
            return null;
        }
        var candidates = Directory.GetFiles(full, "*.gguf");
        return candidates.Length switch
        {
            1 => Path.GetFullPath(candidates[0]),
            0 => null,
            _ => throw new Scheduling.ModelLoadException($"'{full}' holds {candidates.Length} .gguf files: name the one to run"),
        };
    }
}
