using Triton.Inference;

namespace TritonEmulator.Repository;

/// <summary>A model's state as Triton reports it in the repository index.</summary>
public enum ModelState
{
    Unknown,
    Ready,
    Unavailable,
    Loading,
    Unloading,
}

/// <summary>Wire strings of <see cref="ModelState"/>, as Triton's core emits them.</summary>
public static class ModelStateExtensions
{
    public static string ToWireString(this ModelState state) => state switch
    {
        ModelState.Ready => "READY",
        ModelState.Unavailable => "UNAVAILABLE",
        ModelState.Loading => "LOADING",
        ModelState.Unloading => "UNLOADING",
        _ => "UNKNOWN",
    };
}

/// <summary>
/// One model folder of a Triton model repository.
/// </summary>
/// <param name="Name">The folder name, which Triton requires to equal the config's <c>name</c>.</param>
/// <param name="Directory">Full path of the model folder.</param>
/// <param name="Config">The parsed <c>config.pbtxt</c> (its empty <c>name</c> filled in), or null when it is missing or unparseable.</param>
/// <param name="Versions">The versions to serve by the config's <c>version_policy</c>, ascending; empty when unavailable.</param>
/// <param name="State"><see cref="ModelState.Ready"/> or <see cref="ModelState.Unavailable"/>.</param>
/// <param name="Reason">Why the model is unavailable; for a ready model empty, or a note (e.g. versions named by
/// <c>version_policy specific</c> that have no folder).</param>
public sealed record RepositoryModel(
    string Name,
    string Directory,
    ModelConfig? Config,
    IReadOnlyList<long> Versions,
    ModelState State,
    string Reason);
