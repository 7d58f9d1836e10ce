namespace Aspire.Hosting;

/// <summary>
/// The Triton model repository the graph serves (<c>Triton:ModelRepository</c>, relative to the
/// repository root; default <c>models/</c>, FasterTransformer) and what follows from its layout.
/// A repository in TensorRT-LLM's inflight_batcher_llm layout (<c>ensemble/</c> and
/// <c>tensorrt_llm/</c>, e.g. <c>models-trtllm/</c>) runs on the TRT-LLM Triton image with the
/// engine files from a separate volume, and the gateway serves <c>gpt-j-6b</c> from its ensemble.
/// </summary>
internal static class TritonModelRepository
{
    public const string RepositoryKey = "Triton:ModelRepository";
    public const string EngineDirectoryKey = "Triton:EngineDirectory";

    /// <summary>Where the engine volume is mounted in the Triton container (models-trtllm's configs point there).</summary>
    public const string EnginesMountPath = "/engines";

    /// <summary>NVIDIA's Triton image with the TensorRT-LLM and Python backends (tensorrtllm_backend v0.19, Triton 25.05).</summary>
    public const string TensorRtLlmImage = "nvcr.io/nvidia/tritonserver";
    public const string TensorRtLlmTag = "25.05-trtllm-python-py3";

    public static string Resolve(IDistributedApplicationBuilder builder) =>
        Path.GetFullPath(builder.Configuration[RepositoryKey] is { Length: > 0 } configured ? configured : "models", RepositoryRoot(builder));

    /// <summary>Local engine folder for the Triton container (<c>Triton:EngineDirectory</c>, default <c>engines/</c> at the repository root).</summary>
    public static string EngineDirectory(IDistributedApplicationBuilder builder) =>
        Path.GetFullPath(builder.Configuration[EngineDirectoryKey] is { Length: > 0 } configured ? configured : "engines", RepositoryRoot(builder));

    public static bool IsTensorRtLlm(string repository) =>
        File.Exists(Path.Combine(repository, "ensemble", "config.pbtxt"))
        && File.Exists(Path.Combine(repository, "tensorrt_llm", "config.pbtxt"));

    public static bool IsTensorRtLlm(IDistributedApplicationBuilder builder) => IsTensorRtLlm(Resolve(builder));

    private static string RepositoryRoot(IDistributedApplicationBuilder builder) => Path.GetFullPath(Path.Combine(builder.AppHostDirectory, ".."));
}
