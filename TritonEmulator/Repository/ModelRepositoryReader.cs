using System.Globalization;
using Triton.Inference;

namespace TritonEmulator.Repository;

/// <summary>
/// Reads a Triton model repository: one folder per model holding <c>config.pbtxt</c> and numeric
/// version folders (<c>&lt;repo&gt;/&lt;model&gt;/config.pbtxt</c>, <c>&lt;repo&gt;/&lt;model&gt;/1/…</c>).
/// It applies Triton's rules: the config's <c>name</c> must equal the folder name (an empty name
/// takes the folder name), non-numeric version folders are ignored, and <c>version_policy</c>
/// (default <c>latest { num_versions: 1 }</c>) picks the versions to serve. Hidden entries are ignored.
/// </summary>
public static class ModelRepositoryReader
{
    public const string ConfigFileName = "config.pbtxt";

    /// <summary>Every model folder, sorted by name (ordinal); broken models come back Unavailable with a reason.</summary>
    /// <exception cref="DirectoryNotFoundException">The repository folder does not exist.</exception>
    public static IReadOnlyList<RepositoryModel> Read(string repositoryPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(repositoryPath);
        var root = Path.GetFullPath(repositoryPath);
        if (!System.IO.Directory.Exists(root))
        {
            throw new DirectoryNotFoundException($"Model repository '{root}' does not exist.");
        }

        var models = new List<RepositoryModel>();
        foreach (var directory in new DirectoryInfo(root).EnumerateDirectories())
        {
            if (IsHidden(directory))
            {
                continue;
            }

            models.Add(ReadModel(directory));
        }

        models.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        return models;
    }

    private static RepositoryModel ReadModel(DirectoryInfo directory)
    {
        string name = directory.Name;
        string configPath = Path.Combine(directory.FullName, ConfigFileName);
        RepositoryModel Unavailable(ModelConfig? config, string reason) =>
            new(name, directory.FullName, config, [], ModelState.Unavailable, reason);

        if (!File.Exists(configPath))
        {
            return Unavailable(null, $"model '{name}' has no {ConfigFileName} in '{directory.FullName}'");
        }

        ModelConfig config;
        try
        {
            config = TextFormat.Parse<ModelConfig>(File.ReadAllText(configPath));
        }
        catch (TextFormatException e)
        {
            return Unavailable(null, $"failed to parse '{configPath}': {e.Message}");
        }
        catch (IOException e)
        {
            return Unavailable(null, $"failed to read '{configPath}': {e.Message}");
        }
        catch (UnauthorizedAccessException e)
        {
            return Unavailable(null, $"failed to read '{configPath}': {e.Message}");
        }

        if (config.Name.Length == 0)
        {
            config.Name = name;
        }
        else if (config.Name != name)
        {
            return Unavailable(config, $"unexpected directory name '{name}' for model '{config.Name}': the directory name must equal the model name in {ConfigFileName}");
        }

        var available = ReadVersionFolders(directory);
        if (available.Count == 0)
        {
            return Unavailable(config, $"model '{name}' has no version folder (a numeric folder such as '1') in '{directory.FullName}'");
        }

        var policy = config.VersionPolicy ?? new ModelVersionPolicy { Latest = new ModelVersionPolicy.Types.Latest { NumVersions = 1 } };
        switch (policy.PolicyChoiceCase)
        {
            case ModelVersionPolicy.PolicyChoiceOneofCase.All:
                return Ready(available, "");

            case ModelVersionPolicy.PolicyChoiceOneofCase.Specific:
                var wanted = policy.Specific.Versions.Distinct().Order().ToList();
                var missing = wanted.Where(v => !available.Contains(v)).ToList();
                var served = wanted.Where(available.Contains).ToList();
                if (served.Count == 0)
                {
                    return Unavailable(config, wanted.Count == 0
                        ? $"model '{name}' has version_policy specific with no versions"
                        : $"model '{name}' has no folder for any version in version_policy specific [{Join(wanted)}]; found [{Join(available)}]");
                }

                return Ready(served, missing.Count == 0 ? "" : $"versions [{Join(missing)}] named by version_policy specific have no folder");

            case ModelVersionPolicy.PolicyChoiceOneofCase.Latest:
            default:
                uint count = policy.PolicyChoiceCase == ModelVersionPolicy.PolicyChoiceOneofCase.Latest ? policy.Latest.NumVersions : 1;
                if (count == 0)
                {
                    return Unavailable(config, $"model '{name}' has version_policy latest with num_versions 0; it must be at least 1");
                }

                return Ready(available.Skip(Math.Max(0, available.Count - (int)Math.Min(count, int.MaxValue))).ToList(), "");
        }

        RepositoryModel Ready(IReadOnlyList<long> versions, string reason) =>
            new(name, directory.FullName, config, versions, ModelState.Ready, reason);
    }

    /// <summary>Numeric version folders (digits only), ascending; Triton ignores other folders.</summary>
    private static List<long> ReadVersionFolders(DirectoryInfo model)
    {
        var versions = new List<long>();
        foreach (var child in model.EnumerateDirectories())
        {
            if (!IsHidden(child) && long.TryParse(child.Name, NumberStyles.None, CultureInfo.InvariantCulture, out long version))
            {
                versions.Add(version);
            }
        }

        versions.Sort();
        return versions;
    }

    private static bool IsHidden(FileSystemInfo entry) =>
        entry.Name.StartsWith('.') || (entry.Attributes & FileAttributes.Hidden) != 0;

    private static string Join(IEnumerable<long> values) => string.Join(", ", values);
}
