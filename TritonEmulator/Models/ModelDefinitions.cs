using Microsoft.Extensions.Options;
using Triton.Inference;
using TritonEmulator.Hosting;
using TritonEmulator.Repository;

namespace TritonEmulator.Models;

/// <summary>
/// A model as the repository describes it; <see cref="State"/> is Triton's wire state;
/// <see cref="Directory"/> is the model's folder when it comes from a repository on disk.
/// </summary>
internal sealed record ModelDefinition(string Name, ModelConfig? Config, IReadOnlyList<long> Versions, string State, string Reason, string? Directory = null);

/// <summary>Where the engine's models come from (the repository folder; tests may give configs in code).</summary>
internal interface IModelDefinitionSource
{
    IReadOnlyList<ModelDefinition> Load();
}

/// <summary>Reads the model repository folder named by <c>Emulator:ModelRepository</c>.</summary>
internal sealed class RepositoryModelDefinitionSource(IOptions<EmulatorOptions> options, IHostEnvironment environment) : IModelDefinitionSource
{
    public IReadOnlyList<ModelDefinition> Load()
    {
        var path = EmulatorOptions.ResolveRepository(options.Value, environment.ContentRootPath);
        var definitions = new List<ModelDefinition>();
        foreach (var directory in Directory.GetDirectories(path).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(directory);
            var configPath = Path.Combine(directory, "config.pbtxt");
            var versions = Directory.GetDirectories(directory)
                .Select(Path.GetFileName)
                .Select(static v => long.TryParse(v, out var n) ? n : -1)
                .Where(static v => v > 0)
                .Order()
                .ToArray();
            if (!File.Exists(configPath))
            {
                definitions.Add(new ModelDefinition(name, null, versions, "UNAVAILABLE", "missing config.pbtxt", directory));
                continue;
            }
            try
            {
                var config = TextFormat.Parse<ModelConfig>(File.ReadAllText(configPath));
                if (string.IsNullOrEmpty(config.Name))
                {
                    config.Name = name;
                }
                definitions.Add(versions.Length == 0
                    ? new ModelDefinition(name, config, versions, "UNAVAILABLE", "at least one version must be available under the version policy of the model", directory)
                    : new ModelDefinition(name, config, versions, "READY", "", directory));
            }
            catch (Exception exception) when (exception is FormatException or NotImplementedException or IOException)
            {
                definitions.Add(new ModelDefinition(name, null, versions, "UNAVAILABLE", exception.Message, directory));
            }
        }
        return definitions;
    }
}

/// <summary>Model definitions given in code (tests, embedding).</summary>
internal sealed class StaticModelDefinitionSource(IReadOnlyList<ModelDefinition> definitions) : IModelDefinitionSource
{
    public IReadOnlyList<ModelDefinition> Load() => definitions;
}
