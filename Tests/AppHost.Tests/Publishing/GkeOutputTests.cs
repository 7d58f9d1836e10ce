using System.Diagnostics;
using System.Text.RegularExpressions;
using Aspire.Hosting;
using Aspire.Hosting.ApplicationModel;
using Aspire.Hosting.Publishing.Kubernetes;
using k8s;
using k8s.Models;

namespace AppHost.Tests.Publishing;

/// <summary>The generated tree as a whole: drift from the committed folder, secrets, kustomize rendering.</summary>
public sealed partial class GkeOutputTests(GkePublishFixture publish) : IClassFixture<GkePublishFixture>
{
    [Fact]
    public void CommittedAspirateOutput_EqualsAFreshPublish()
    {
        var committed = Path.Combine(GkePublish.RepositoryRoot(), ManifestWriter.FolderName);
        var expected = Files(publish.Output);
        var actual = Files(committed);

        Assert.True(expected.Keys.SequenceEqual(actual.Keys),
            "aspirate-output/ drifted from the AppHost (file list). Regenerate: dotnet run --project AppHost -- --operation publish --step publish --output-path .\n"
            + $"fresh: {string.Join(", ", expected.Keys)}\ncommitted: {string.Join(", ", actual.Keys)}");
        foreach (var (path, bytes) in expected)
        {
            Assert.True(bytes.AsSpan().SequenceEqual(actual[path]),
                $"aspirate-output/{path} drifted from the AppHost. Regenerate: dotnet run --project AppHost -- --operation publish --step publish --output-path .");
        }
    }

    [Fact]
    public async Task Publish_IsDeterministic()
    {
        var root = Directory.CreateTempSubdirectory("gke-publish-again-").FullName;
        try
        {
            var again = await GkePublish.PublishAsync(root);
            var first = Files(publish.Output);
            var second = Files(again);
            Assert.Equal(first.Keys, second.Keys);
            Assert.All(first, pair => Assert.True(pair.Value.AsSpan().SequenceEqual(second[pair.Key]), pair.Key));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task SecretParameter_GoesToTheSecretFileButNeverIntoAnyGeneratedFile()
    {
        const string Sentinel = "sk-sentinel-9f2c4e7a1b";
        var root = Directory.CreateTempSubdirectory("gke-publish-secret-").FullName;
        try
        {
            var output = await GkePublish.PublishAsync(root, ["--Parameters:upstream-token=" + Sentinel], builder =>
            {
                var token = builder.AddParameter("upstream-token", secret: true);
                builder.CreateResourceBuilder<ProjectResource>("gateway")
                    .WithEnvironment("Upstream__Token", token)
                    .WithEnvironment("Upstream__Header", ReferenceExpression.Create($"Bearer {token.Resource}"));
            });

            foreach (var file in Directory.EnumerateFiles(output, "*", SearchOption.AllDirectories))
            {
                Assert.DoesNotContain(Sentinel, File.ReadAllText(file));
            }
            var example = File.ReadAllLines(Path.Combine(output, "gateway", ManifestGenerator.SecretExampleFileName));
            Assert.Contains("Upstream__Token=", example);
            Assert.Contains("Upstream__Header=", example);
            var literals = GkePublish.LoadKustomization(Path.Combine(output, "gateway")).ConfigMapGenerator![0].Literals!;
            Assert.DoesNotContain(literals, l => l.StartsWith("Upstream__", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void GeneratedFiles_HoldNoSecretValues()
    {
        foreach (var file in Directory.EnumerateFiles(publish.Output, "*", SearchOption.AllDirectories))
        {
            var name = Path.GetFileName(file);
            Assert.False(ManifestWriter.IsOperatorSecret(file), $"{file} is a secret file and must not be generated");
            foreach (var line in File.ReadLines(file))
            {
                // Secret-looking keys may appear only without a value (in .env.secret.example).
                var match = SecretAssignment().Match(line);
                Assert.False(match.Success && match.Groups["value"].Length > 0 && name != ManifestGenerator.SecretExampleFileName,
                    $"{name}: {line}");
            }
            if (name == ManifestGenerator.SecretExampleFileName)
            {
                Assert.All(File.ReadLines(file).Where(l => l.Contains("Sha256=", StringComparison.Ordinal)), l => Assert.EndsWith("=", l));
            }
        }
        Assert.DoesNotContain(GkePublish.LoadObjects(publish.Output), o => o.Object is V1Secret);
    }

    // An environment assignment (a configMapGenerator literal or an env-file line) to a secret-looking key.
    [GeneratedRegex(@"(?i)^[\s-]*[A-Za-z0-9_.]*(password|secret|token|apikey|api_key|sha256|connectionstring)[A-Za-z0-9_.]*=(?<value>.*)$")]
    private static partial Regex SecretAssignment();

    [Fact]
    public void Kustomization_RendersWithEveryReferenceResolved()
    {
        // A kustomize-equivalent walk: every listed resource exists and parses, every generator's
        // file exists once the operator has created it, every reference from a Deployment to a
        // generated ConfigMap or Secret has its generator, and all of it shares one namespace.
        var rendered = Render(publish.Output, createSecretsFromExamples: true);

        var names = rendered.Generated.ToHashSet(StringComparer.Ordinal);
        foreach (var deployment in rendered.Objects.OfType<V1Deployment>())
        {
            foreach (var source in deployment.Spec.Template.Spec.Containers.SelectMany(c => c.EnvFrom ?? []))
            {
                var name = source.ConfigMapRef?.Name ?? source.SecretRef!.Name;
                Assert.Contains(name, names);
            }
        }
        Assert.Equal(rendered.Objects.Count, rendered.Objects.Select(o => Key(o)).Distinct().Count());

        // Without the operator's secret file the render must fail (it is never committed).
        Assert.Throws<FileNotFoundException>(() => Render(publish.Output, createSecretsFromExamples: false));
    }

    [KubectlFact]
    public async Task KubectlKustomize_RendersAndWiresGeneratedNames()
    {
        var copy = Directory.CreateTempSubdirectory("gke-kubectl-").FullName;
        try
        {
            CopyTree(publish.Output, copy);
            foreach (var example in Directory.EnumerateFiles(copy, ManifestGenerator.SecretExampleFileName, SearchOption.AllDirectories))
            {
                File.Copy(example, Path.Combine(Path.GetDirectoryName(example)!, ManifestGenerator.SecretFileName));
            }

            using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            using var kubectl = Process.Start(new ProcessStartInfo(KubectlFactAttribute.Kubectl!, ["kustomize", copy])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            })!;
            var stdout = kubectl.StandardOutput.ReadToEndAsync(cts.Token);
            var stderr = kubectl.StandardError.ReadToEndAsync(cts.Token);
            await kubectl.WaitForExitAsync(cts.Token);
            Assert.True(kubectl.ExitCode == 0, await stderr);

            var objects = KubernetesYaml.LoadAllFromString(await stdout, GkePublish.CustomResourceTypes.ToDictionary(), strict: true);
            var configMaps = objects.OfType<V1ConfigMap>().Select(c => c.Metadata.Name).ToHashSet();
            var secrets = objects.OfType<V1Secret>().Select(c => c.Metadata.Name).ToHashSet();
            Assert.Contains(configMaps, n => n.StartsWith("gateway-env-", StringComparison.Ordinal));
            Assert.Contains(secrets, n => n.StartsWith("gateway-secrets-", StringComparison.Ordinal));
            foreach (var source in objects.OfType<V1Deployment>().SelectMany(d => d.Spec.Template.Spec.Containers).SelectMany(c => c.EnvFrom ?? []))
            {
                // kustomize rewrote the reference to the hashed name of a generated object.
                Assert.True(source.ConfigMapRef is { } map ? configMaps.Contains(map.Name) : secrets.Contains(source.SecretRef.Name));
            }
            Assert.All(objects, o => Assert.Equal("llm-gateway",
                ((IKubernetesObject<V1ObjectMeta>)o).Metadata.NamespaceProperty ?? ((IKubernetesObject<V1ObjectMeta>)o).Metadata.Name));
            Assert.Equal(GkePublish.LoadObjects(publish.Output).Count + configMaps.Count + secrets.Count, objects.Count);
        }
        finally
        {
            Directory.Delete(copy, recursive: true);
        }
    }

    private sealed record Rendering(List<object> Objects, List<string> Generated);

    private static Rendering Render(string folder, bool createSecretsFromExamples)
    {
        var copy = Directory.CreateTempSubdirectory("gke-render-").FullName;
        try
        {
            CopyTree(folder, copy);
            if (createSecretsFromExamples)
            {
                foreach (var example in Directory.EnumerateFiles(copy, ManifestGenerator.SecretExampleFileName, SearchOption.AllDirectories))
                {
                    File.Copy(example, Path.Combine(Path.GetDirectoryName(example)!, ManifestGenerator.SecretFileName));
                }
            }
            var rendering = new Rendering([], []);
            Walk(copy, rendering, namespaceFromParent: null);
            return rendering;
        }
        finally
        {
            Directory.Delete(copy, recursive: true);
        }
    }

    private static void Walk(string folder, Rendering rendering, string? namespaceFromParent)
    {
        var kustomization = GkePublish.LoadKustomization(folder);
        var ns = kustomization.Namespace ?? namespaceFromParent;
        Assert.False(string.IsNullOrEmpty(ns), $"{folder}: no namespace");
        Assert.NotEmpty(kustomization.Resources);
        foreach (var resource in kustomization.Resources)
        {
            var path = Path.Combine(folder, resource);
            if (Directory.Exists(path))
            {
                Walk(path, rendering, ns);
                continue;
            }
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"{folder}/kustomization.yaml lists {resource}, which does not exist", path);
            }
            foreach (var item in KubernetesYaml.LoadAllFromString(File.ReadAllText(path), GkePublish.CustomResourceTypes.ToDictionary(), strict: true))
            {
                var meta = ((IKubernetesObject<V1ObjectMeta>)item).Metadata;
                if (((IKubernetesObject)item).Kind != "Namespace")
                {
                    Assert.Equal(ns, meta.NamespaceProperty);
                }
                rendering.Objects.Add(item);
            }
        }
        foreach (var generator in (kustomization.ConfigMapGenerator ?? []).Concat(kustomization.SecretGenerator ?? []))
        {
            foreach (var env in generator.Envs ?? [])
            {
                var path = Path.Combine(folder, env);
                if (!File.Exists(path))
                {
                    throw new FileNotFoundException($"{folder}: generator {generator.Name} reads {env}, which does not exist", path);
                }
                Assert.All(File.ReadLines(path).Where(l => l.Length > 0 && l[0] != '#'), l => Assert.Contains('=', l));
            }
            Assert.All(generator.Literals ?? [], l => Assert.Matches("^[A-Za-z_][A-Za-z0-9_.-]*=", l));
            rendering.Generated.Add(generator.Name);
        }
    }

    private static string Key(object item)
    {
        var o = (IKubernetesObject<V1ObjectMeta>)item;
        return $"{o.ApiVersion}/{o.Kind}/{o.Metadata.NamespaceProperty}/{o.Metadata.Name}";
    }

    private static SortedDictionary<string, byte[]> Files(string folder)
    {
        var files = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var file in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            if (!ManifestWriter.IsOperatorSecret(file))
            {
                files[Path.GetRelativePath(folder, file).Replace('\\', '/')] = File.ReadAllBytes(file);
            }
        }
        return files;
    }

    private static void CopyTree(string from, string to)
    {
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            if (ManifestWriter.IsOperatorSecret(file))
            {
                continue;
            }
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }

}

/// <summary>A fact that runs where kubectl is on PATH and is reported as skipped elsewhere.</summary>
public sealed class KubectlFactAttribute : FactAttribute
{
    public static readonly string? Kubectl = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
        .Where(dir => dir.Length > 0)
        .Select(dir => Path.Combine(dir, "kubectl"))
        .FirstOrDefault(File.Exists);

    public KubectlFactAttribute()
    {
        if (Kubectl is null)
        {
            Skip = "kubectl is not on PATH (the in-process render check still runs)";
        }
    }
}
