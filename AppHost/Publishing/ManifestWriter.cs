using System.Text;

namespace Aspire.Hosting.Publishing.Kubernetes;

/// <summary>
/// Writes the generated tree into <c>aspirate-output/</c> and removes files a previous publish
/// wrote that this one did not, so the folder always equals one publish. The git-ignored secret
/// files (<c>.env.secret</c>, <c>*.secret</c>) that an operator created there are left alone.
/// </summary>
internal static class ManifestWriter
{
    public const string FolderName = "aspirate-output";

    private static readonly UTF8Encoding Utf8NoBom = new(encoderShouldEmitUTF8Identifier: false);

    public static async Task WriteAsync(string folder, IReadOnlyList<GeneratedFile> files, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(folder);
        var expected = new HashSet<string>(StringComparer.Ordinal);
        foreach (var file in files)
        {
            var path = Path.GetFullPath(Path.Combine(folder, file.Path));
            expected.Add(path);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await File.WriteAllTextAsync(path, file.Content, Utf8NoBom, cancellationToken).ConfigureAwait(false);
        }

        foreach (var path in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            if (!expected.Contains(Path.GetFullPath(path)) && !IsOperatorSecret(path))
            {
                File.Delete(path);
            }
        }
        foreach (var directory in Directory.EnumerateDirectories(folder, "*", SearchOption.AllDirectories)
                     .OrderByDescending(d => d.Length))
        {
            if (!Directory.EnumerateFileSystemEntries(directory).Any())
            {
                Directory.Delete(directory);
            }
        }
    }

    /// <summary>The files secretGenerators read: created by the operator, git-ignored, never generated.</summary>
    public static bool IsOperatorSecret(string path)
    {
        var name = Path.GetFileName(path);
        return name == ManifestGenerator.SecretFileName || name.EndsWith(".secret", StringComparison.Ordinal);
    }
}
