using Microsoft.Extensions.Options;
using Triton.Inference;
using TritonEmulator.Hosting;
using TritonEmulator.Repository;

namespace TritonEmulator.Models;

/// <summary>A model as the repository describes it; <see cref="State"/> is Triton's wire state.</summary>
internal sealed record ModelDefinition(string Name, ModelConfig? Config, IReadOnlyList<long> Versions, string State, string Reason);

/// <summary>Where the engine's models come from (the repository folder; tests may give configs in code).</summary>
internal interface IModelDefinitionSource
{
    IReadOnlyList<ModelDefinition> Load();
}

/// <summary>Reads the model repository folder named by <c>Emulator:ModelRepository</c> with <see cref="ModelRepositoryReader"/>.</summary>
internal sealed class RepositoryModelDefinitionSource(IOptions<EmulatorOptions> options, IHostEnvironment environment) : IModelDefinitionSource
{
    public IReadOnlyList<ModelDefinition> Load()
    {
        var path = EmulatorOptions.ResolveRepository(options.Value, environment.ContentRootPath);
        return [.. ModelRepositoryReader.Read(path).Select(static m => new ModelDefinition(m.Name, m.Config, m.Versions, m.State.ToWireString(), m.Reason))];
    }
}

/// <summary>Model definitions given in code (tests, embedding).</summary>
internal sealed class StaticModelDefinitionSource(IReadOnlyList<ModelDefinition> definitions) : IModelDefinitionSource
{
    public IReadOnlyList<ModelDefinition> Load() => definitions;
}
