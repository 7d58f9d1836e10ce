using Aspire.Hosting;
using Aspire.Hosting.Publishing.Kubernetes;
using Aspire.Hosting.Testing;
using k8s;

namespace AppHost.Tests.Publishing;

/// <summary>Runs the real AppHost in publish mode, in process, into a folder of the caller's choice.</summary>
internal static class GkePublish
{
    /// <summary>The type map for the custom resources, so every document loads into a typed model.</summary>
    public static readonly IReadOnlyDictionary<string, Type> CustomResourceTypes = new Dictionary<string, Type>
    {
        ["gateway.networking.k8s.io/v1/Gateway"] = typeof(GatewayApiGateway),
        ["gateway.networking.k8s.io/v1/HTTPRoute"] = typeof(HttpRoute),
        ["networking.gke.io/v1/HealthCheckPolicy"] = typeof(HealthCheckPolicy),
        ["networking.gke.io/v1/GCPBackendPolicy"] = typeof(GcpBackendPolicy),
        ["monitoring.googleapis.com/v1/PodMonitoring"] = typeof(PodMonitoring),
        ["monitoring.googleapis.com/v1/Rules"] = typeof(PrometheusRules),
    };

    /// <summary>
    /// Publishes with the same arguments as the documented command (an absolute output path),
    /// plus <paramref name="extraArgs"/>; <paramref name="configure"/> may change the model first.
    /// </summary>
    public static async Task<string> PublishAsync(
        string outputPath, string[]? extraArgs = null, Action<IDistributedApplicationTestingBuilder>? configure = null)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        string[] args = ["--operation", "publish", "--step", "publish", "--output-path", outputPath, .. extraArgs ?? []];
        var builder = await DistributedApplicationTestingBuilder.CreateAsync<Projects.AppHost>(args, cts.Token);
        configure?.Invoke(builder);
        await using var app = await builder.BuildAsync(cts.Token);
        await app.RunAsync(cts.Token);
        return Path.Combine(outputPath, ManifestWriter.FolderName);
    }

    /// <summary>The repository root: the folder that holds Aspire.sln above the test binaries.</summary>
    public static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Aspire.sln")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException("Aspire.sln not found above " + AppContext.BaseDirectory);
    }

    /// <summary>Every Kubernetes object of every manifest (kustomization files excluded), strictly typed.</summary>
    public static IReadOnlyList<(string File, object Object)> LoadObjects(string folder)
    {
        var objects = new List<(string, object)>();
        foreach (var file in Directory.EnumerateFiles(folder, "*.yaml", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            if (Path.GetFileName(file) == "kustomization.yaml")
            {
                continue;
            }
            var relative = Path.GetRelativePath(folder, file).Replace('\\', '/');
            foreach (var item in KubernetesYaml.LoadAllFromString(File.ReadAllText(file), CustomResourceTypes.ToDictionary(), strict: true))
            {
                objects.Add((relative, item));
            }
        }
        return objects;
    }

    public static Kustomization LoadKustomization(string folder) =>
        KubernetesYaml.Deserialize<Kustomization>(File.ReadAllText(Path.Combine(folder, "kustomization.yaml")), strict: true);
}

/// <summary>One publish shared by the class (an AppHost costs seconds to build and run).</summary>
public sealed class GkePublishFixture : IAsyncLifetime
{
    private string _root = "";

    public string Output { get; private set; } = "";

    internal IReadOnlyList<(string File, object Object)> Objects { get; private set; } = [];

    public async Task InitializeAsync()
    {
        _root = Directory.CreateTempSubdirectory("gke-publish-").FullName;
        Output = await GkePublish.PublishAsync(_root);
        Objects = GkePublish.LoadObjects(Output);
    }

    public Task DisposeAsync()
    {
        Directory.Delete(_root, recursive: true);
        return Task.CompletedTask;
    }

    internal T Single<T>(string name) => Objects.Select(o => o.Object).OfType<T>()
        .Single(o => ((k8s.IKubernetesObject<k8s.Models.V1ObjectMeta>)o!).Metadata.Name == name);

    internal IEnumerable<T> All<T>() => Objects.Select(o => o.Object).OfType<T>();
}
