using System.Globalization;
using Aspire.Hosting.Publishing.Kubernetes;
using k8s;
using k8s.Models;

namespace AppHost.Tests.Publishing;

/// <summary>What the published GKE manifests hold, loaded with KubernetesClient's typed models.</summary>
public sealed class GkeManifestTests(GkePublishFixture publish) : IClassFixture<GkePublishFixture>
{
    private const string Namespace = "llm-gateway";

    [Fact]
    public void Triton_SchedulesOnlyOnGpuNodesAndAsksForGpus()
    {
        var pod = publish.Single<V1Deployment>("triton").Spec.Template.Spec;
        var container = Assert.Single(pod.Containers);

        Assert.Equal("nvidia-tesla-a100", pod.NodeSelector["cloud.google.com/gke-accelerator"]);
        var toleration = Assert.Single(pod.Tolerations);
        Assert.Equal(("nvidia.com/gpu", "Exists", "NoSchedule"), (toleration.Key, toleration.OperatorProperty, toleration.Effect));
        Assert.Equal(1, container.Resources.Limits["nvidia.com/gpu"].ToInt32());
        Assert.Equal(container.Resources.Limits["nvidia.com/gpu"], container.Resources.Requests["nvidia.com/gpu"]);
    }

    [Fact]
    public async Task Triton_GpuParameters_ComeFromTheCommandLine()
    {
        // A second publish with other parameter values: the AppHost reads them on every publish.
        var root = Directory.CreateTempSubdirectory("gke-publish-params-").FullName;
        try
        {
            var output = await GkePublish.PublishAsync(root,
                ["--Parameters:gke-accelerator=nvidia-l4", "--Parameters:triton-gpu-count=2", "--Parameters:triton-model-bucket=other-bucket"]);
            var deployment = GkePublish.LoadObjects(output).Select(o => o.Object).OfType<V1Deployment>().Single(d => d.Metadata.Name == "triton");
            var pod = deployment.Spec.Template.Spec;

            Assert.Equal("nvidia-l4", pod.NodeSelector["cloud.google.com/gke-accelerator"]);
            Assert.Equal(2, pod.Containers[0].Resources.Limits["nvidia.com/gpu"].ToInt32());
            Assert.Equal(2, pod.Containers[0].Resources.Requests["nvidia.com/gpu"].ToInt32());
            Assert.Equal("other-bucket", pod.Volumes.Single(v => v.Csi is not null).Csi.VolumeAttributes["bucketName"]);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task TensorRtLlmRepository_PublishesTheTrtLlmImage_WithGpus_Shm_AndEnginesFromTheirOwnBucket()
    {
        var root = Directory.CreateTempSubdirectory("gke-publish-trtllm-").FullName;
        try
        {
            var output = await GkePublish.PublishAsync(root, ["--Triton:ModelRepository=models-trtllm"]);
            var objects = GkePublish.LoadObjects(output).Select(o => o.Object).ToList();
            var pod = objects.OfType<V1Deployment>().Single(d => d.Metadata.Name == "triton").Spec.Template.Spec;
            var container = Assert.Single(pod.Containers);

            Assert.Equal("nvcr.io/nvidia/tritonserver:25.05-trtllm-python-py3", container.Image);
            Assert.Equal(1, container.Resources.Limits["nvidia.com/gpu"].ToInt32());
            Assert.Equal("nvidia-tesla-a100", pod.NodeSelector["cloud.google.com/gke-accelerator"]);
            var shm = pod.Volumes.Single(v => v.Name == container.VolumeMounts.Single(m => m.MountPath == "/dev/shm").Name);
            Assert.Equal("Memory", shm.EmptyDir.Medium);
            var enginesMount = container.VolumeMounts.Single(m => m.MountPath == "/engines");
            Assert.True(enginesMount.ReadOnlyProperty);
            var engines = pod.Volumes.Single(v => v.Name == enginesMount.Name);
            Assert.Equal("llm-gateway-triton-models-engines", engines.Csi.VolumeAttributes["bucketName"]);
            Assert.Equal("llm-gateway-triton-models", pod.Volumes.Single(v => v.Name == container.VolumeMounts.Single(m => m.MountPath == "/models").Name).Csi.VolumeAttributes["bucketName"]);

            var literals = GkePublish.LoadKustomization(Path.Combine(output, "gateway")).ConfigMapGenerator![0].Literals!;
            Assert.Contains("Gateway__Models__gpt-j-6b__TritonModel=ensemble", literals);
            Assert.Contains("Gateway__Models__gpt-j-6b__Contract=tensorrtllm", literals);
            Assert.Contains("Gateway__Models__gpt-j-6b__MaxInputTokens=1024", literals);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void Triton_MountsShmAndTheModelBucketThroughGcsFuse()
    {
        var deployment = publish.Single<V1Deployment>("triton");
        var pod = deployment.Spec.Template.Spec;
        var container = pod.Containers[0];

        var shm = pod.Volumes.Single(v => v.Name == container.VolumeMounts.Single(m => m.MountPath == "/dev/shm").Name);
        Assert.Equal("Memory", shm.EmptyDir.Medium);
        Assert.True(shm.EmptyDir.SizeLimit.ToDecimal() >= 1024m * 1024 * 1024);
        Assert.True(container.Resources.Limits["memory"].ToDecimal() > shm.EmptyDir.SizeLimit.ToDecimal());

        var modelMount = container.VolumeMounts.Single(m => m.MountPath == "/models");
        Assert.True(modelMount.ReadOnlyProperty);
        var models = pod.Volumes.Single(v => v.Name == modelMount.Name);
        Assert.Equal("gcsfuse.csi.storage.gke.io", models.Csi.Driver);
        Assert.Equal("llm-gateway-triton-models", models.Csi.VolumeAttributes["bucketName"]);
        Assert.Equal("true", deployment.Spec.Template.Metadata.Annotations["gke-gcsfuse/volumes"]);

        // Workload Identity: the pod runs as a KSA that the manifests create.
        Assert.Equal("triton", pod.ServiceAccountName);
        Assert.Contains(publish.All<V1ServiceAccount>(), sa => sa.Metadata.Name == pod.ServiceAccountName);

        Assert.Equal(["tritonserver", "--model-repository=/models"], container.Args.Take(2));
        Assert.Contains("--allow-metrics=true", container.Args);
    }

    [Fact]
    public void Triton_HasNamedPortsProbesAndBothServices()
    {
        var container = publish.Single<V1Deployment>("triton").Spec.Template.Spec.Containers[0];

        Assert.Equal([("http", 8000), ("grpc", 8001), ("metrics", 8002)], container.Ports.Select(p => (p.Name, p.ContainerPort)));
        Assert.Equal("/v2/health/ready", container.ReadinessProbe.HttpGet.Path);
        Assert.Equal("/v2/health/live", container.LivenessProbe.HttpGet.Path);
        Assert.Equal("/v2/health/ready", container.StartupProbe.HttpGet.Path);
        // Model loading: at least 15 minutes before the liveness probe may restart the pod.
        Assert.True(container.StartupProbe.PeriodSeconds * container.StartupProbe.FailureThreshold >= 900);

        var service = publish.Single<V1Service>("triton");
        var headless = publish.Single<V1Service>("triton-headless");
        Assert.Null(service.Spec.ClusterIP);
        Assert.Equal("None", headless.Spec.ClusterIP);
        foreach (var svc in new[] { service, headless })
        {
            Assert.Equal([("http", 8000), ("grpc", 8001), ("metrics", 8002)], svc.Spec.Ports.Select(p => (p.Name, p.Port)));
            Assert.Equal("kubernetes.io/h2c", svc.Spec.Ports.Single(p => p.Name == "grpc").AppProtocol);
            AssertSelects(svc.Spec.Selector, publish.Single<V1Deployment>("triton"));
        }
    }

    [Fact]
    public void Triton_AutoscalesOnItsQueueAndIsScraped()
    {
        var hpa = publish.Single<V2HorizontalPodAutoscaler>("triton");
        Assert.Equal(("Deployment", "triton"), (hpa.Spec.ScaleTargetRef.Kind, hpa.Spec.ScaleTargetRef.Name));
        var metric = Assert.Single(hpa.Spec.Metrics);
        Assert.Equal("Pods", metric.Type);
        Assert.Equal("prometheus.googleapis.com|nv_inference_pending_request_count|gauge", metric.Pods.Metric.Name);
        Assert.Equal("AverageValue", metric.Pods.Target.Type);

        var monitoring = publish.Single<PodMonitoring>("triton");
        Assert.Equal("metrics", Assert.Single(monitoring.Spec.Endpoints).Port);
        AssertSelects(monitoring.Spec.Selector.MatchLabels, publish.Single<V1Deployment>("triton"));
    }

    [Fact]
    public void Gateway_IsHardenedAndDrainsStreamsOnShutdown()
    {
        var deployment = publish.Single<V1Deployment>("gateway");
        var pod = deployment.Spec.Template.Spec;
        var container = Assert.Single(pod.Containers);

        Assert.True(deployment.Spec.Replicas >= 2);
        Assert.Equal("RollingUpdate", deployment.Spec.Strategy.Type);
        Assert.Equal("0", deployment.Spec.Strategy.RollingUpdate.MaxUnavailable.Value);

        Assert.Equal("/health", container.ReadinessProbe.HttpGet.Path);
        Assert.Equal("/alive", container.LivenessProbe.HttpGet.Path);
        Assert.Equal("http", container.ReadinessProbe.HttpGet.Port.Value);
        Assert.Equal([("http", 5080), ("grpc", 5081)], container.Ports.Select(p => (p.Name, p.ContainerPort)));
        Assert.NotNull(container.Resources.Requests["cpu"]);
        Assert.NotNull(container.Resources.Limits["memory"]);

        Assert.True(pod.SecurityContext.RunAsNonRoot);
        Assert.Equal("RuntimeDefault", pod.SecurityContext.SeccompProfile.Type);
        Assert.True(container.SecurityContext.ReadOnlyRootFilesystem);
        Assert.False(container.SecurityContext.AllowPrivilegeEscalation);
        Assert.Equal(["ALL"], container.SecurityContext.Capabilities.Drop);
        var tmp = container.VolumeMounts.Single(m => m.MountPath == "/tmp");
        Assert.NotNull(pod.Volumes.Single(v => v.Name == tmp.Name).EmptyDir);

        Assert.True(pod.TerminationGracePeriodSeconds >= 120);
        Assert.True(container.Lifecycle.PreStop.Sleep.Seconds > 0);
        Assert.True(container.Lifecycle.PreStop.Sleep.Seconds < pod.TerminationGracePeriodSeconds);
    }

    [Fact]
    public void Gateway_DrainFitsTheGracePeriod_AfterThePreStopSleep()
    {
        var pod = publish.Single<V1Deployment>("gateway").Spec.Template.Spec;
        var container = Assert.Single(pod.Containers);
        var literals = GkePublish.LoadKustomization(Path.Combine(publish.Output, "gateway")).ConfigMapGenerator![0].Literals!;
        TimeSpan Setting(string key) => TimeSpan.Parse(
            Assert.Single(literals, l => l.StartsWith(key + "=", StringComparison.Ordinal))[(key.Length + 1)..], CultureInfo.InvariantCulture);

        var accept = Setting("Gateway__Shutdown__AcceptWindow");
        var drain = Setting("Gateway__Shutdown__DrainTimeout");
        var finalWrite = Setting("Gateway__Shutdown__FinalWriteTimeout");
        // The kubelet runs preStop, then sends SIGTERM; the drain counts from SIGTERM; the host
        // stops within 5 s of the final write. All of it before the grace period's SIGKILL.
        var preStop = TimeSpan.FromSeconds(container.Lifecycle.PreStop.Sleep.Seconds);
        Assert.True(accept > TimeSpan.Zero && accept < drain);
        Assert.True(preStop + drain + finalWrite + TimeSpan.FromSeconds(5) < TimeSpan.FromSeconds(pod.TerminationGracePeriodSeconds!.Value),
            $"preStop {preStop} + drain {drain} + final write {finalWrite} + 5 s must fit in {pod.TerminationGracePeriodSeconds} s");
        // Readiness reads the drain check: it turns false at SIGTERM.
        Assert.Equal("/health", container.ReadinessProbe.HttpGet.Path);
    }

    [Fact]
    public void Gateway_HasDisruptionBudgetAndCpuAutoscaler()
    {
        var deployment = publish.Single<V1Deployment>("gateway");

        var pdb = publish.Single<V1PodDisruptionBudget>("gateway");
        Assert.Equal("1", pdb.Spec.MinAvailable.Value);
        AssertSelects(pdb.Spec.Selector.MatchLabels, deployment);

        var hpa = publish.Single<V2HorizontalPodAutoscaler>("gateway");
        Assert.Equal(("apps/v1", "Deployment", "gateway"), (hpa.Spec.ScaleTargetRef.ApiVersion, hpa.Spec.ScaleTargetRef.Kind, hpa.Spec.ScaleTargetRef.Name));
        Assert.True(hpa.Spec.MinReplicas >= 2);
        var metric = Assert.Single(hpa.Spec.Metrics);
        Assert.Equal(("Resource", "cpu", "Utilization"), (metric.Type, metric.Resource.Name, metric.Resource.Target.Type));

        var monitoring = publish.Single<PodMonitoring>("gateway");
        Assert.Equal(("http", "/metrics"), (monitoring.Spec.Endpoints[0].Port, monitoring.Spec.Endpoints[0].Path));
    }

    [Fact]
    public void Redis_IsADeploymentAndServiceThatTheGatewayReachesWithThePasswordInSecrets()
    {
        var container = Assert.Single(publish.Single<V1Deployment>("redis").Spec.Template.Spec.Containers);
        Assert.StartsWith("docker.io/library/redis:", container.Image, StringComparison.Ordinal);
        Assert.Equal(["/bin/sh"], container.Command); // the model's entrypoint, so the shell expands $REDIS_PASSWORD
        Assert.Equal(["-c", "redis-server --requirepass $REDIS_PASSWORD"], container.Args);
        Assert.Equal("tcp", container.ReadinessProbe.TcpSocket.Port.Value);
        var service = publish.Single<V1Service>("redis");
        Assert.Equal(6379, Assert.Single(service.Spec.Ports).Port);

        var redisSecrets = File.ReadAllText(Path.Combine(publish.Output, "redis", ".env.secret.example"));
        Assert.Contains("REDIS_PASSWORD=", redisSecrets, StringComparison.Ordinal);
        // The gateway's connection string holds the password, so it goes to the gateway's Secret, never the ConfigMap.
        var gateway = GkePublish.LoadKustomization(Path.Combine(publish.Output, "gateway"));
        Assert.DoesNotContain(gateway.ConfigMapGenerator![0].Literals!, l => l.StartsWith("ConnectionStrings__redis", StringComparison.Ordinal));
        Assert.Contains("ConnectionStrings__redis=", File.ReadAllText(Path.Combine(publish.Output, "gateway", ".env.secret.example")), StringComparison.Ordinal);
    }

    [Fact]
    public void LedgerDatabase_IsAConnectionStringFromTheGatewaysSecret_AndNoPostgresWorkloadIsPublished()
    {
        // Cloud SQL for PostgreSQL (docs/deploy-gke.md): the connection string and the admin key's hash come from the Secret.
        var gateway = GkePublish.LoadKustomization(Path.Combine(publish.Output, "gateway"));
        Assert.DoesNotContain(gateway.ConfigMapGenerator![0].Literals!, l => l.StartsWith("ConnectionStrings__ledger", StringComparison.Ordinal));
        var example = File.ReadAllText(Path.Combine(publish.Output, "gateway", ".env.secret.example"));
        Assert.Contains("ConnectionStrings__ledger=", example, StringComparison.Ordinal);
        Assert.Contains("Gateway__Admin__ApiKeySha256=", example, StringComparison.Ordinal);
        Assert.DoesNotContain(publish.All<V1Deployment>(), d => d.Metadata.Name.Contains("postgres", StringComparison.Ordinal));
        Assert.False(Directory.Exists(Path.Combine(publish.Output, "postgres")));
    }

    [Fact]
    public void Gateway_FindsTritonReplicasThroughTheHeadlessServiceAndApiKeysInASecret()
    {
        var kustomization = GkePublish.LoadKustomization(Path.Combine(publish.Output, "gateway"));
        var literals = Assert.Single(kustomization.ConfigMapGenerator!).Literals!;
        // Every Triton pod is a replica the gateway routes to by load: it resolves the headless
        // Service (all pod addresses) instead of the ClusterIP Service's single address.
        Assert.Contains("Gateway__Triton__HeadlessService=triton-headless:8001", literals);
        Assert.Contains("Gateway__Triton__HeadlessMetricsPort=8002", literals);
        Assert.DoesNotContain(literals, l => l.StartsWith("services__triton__", StringComparison.Ordinal));
        var headless = publish.Single<V1Service>("triton-headless");
        Assert.Equal("None", headless.Spec.ClusterIP);
        Assert.Contains(headless.Spec.Ports, p => p.Port == 8001);
        Assert.Contains(headless.Spec.Ports, p => p.Port == 8002);
        Assert.Contains("OTEL_EXPORTER_OTLP_ENDPOINT=http://opentelemetry-collector.gke-managed-otel.svc.cluster.local:4317", literals);

        var secrets = Assert.Single(kustomization.SecretGenerator!);
        Assert.Equal([".env.secret"], secrets.Envs);
        var envFrom = publish.Single<V1Deployment>("gateway").Spec.Template.Spec.Containers[0].EnvFrom;
        Assert.Contains(envFrom, e => e.SecretRef?.Name == secrets.Name);
        Assert.Contains(envFrom, e => e.ConfigMapRef?.Name == kustomization.ConfigMapGenerator![0].Name);

        // The secret file itself is never generated, and git ignores it.
        Assert.False(File.Exists(Path.Combine(publish.Output, "gateway", ".env.secret")));
        Assert.True(File.Exists(Path.Combine(publish.Output, "gateway", ".env.secret.example")));
        Assert.True(GitIgnores("aspirate-output/gateway/.env.secret"));
        Assert.False(GitIgnores("aspirate-output/gateway/.env.secret.example"));
    }

    [Fact]
    public void PublicEntry_RoutesRestThroughGkeGatewayWithoutCuttingSse()
    {
        var gateway = Assert.Single(publish.All<GatewayApiGateway>());
        Assert.StartsWith("gke-l7-", gateway.Spec.GatewayClassName);

        var routes = publish.All<HttpRoute>().ToList();
        var rest = routes.Single(r => r.Metadata.Name == "gateway");
        Assert.Equal(gateway.Metadata.Name, Assert.Single(rest.Spec.ParentRefs).Name);
        Assert.Equal("/v1", rest.Spec.Rules[0].Matches[0].Path.Value);
        Assert.Equal(("gateway", 5080), (rest.Spec.Rules[0].BackendRefs[0].Name, rest.Spec.Rules[0].BackendRefs[0].Port));

        // Every backend behind the load balancer: health on /health, and a timeout far above 30 s.
        foreach (var backend in routes.SelectMany(r => r.Spec.Rules).SelectMany(r => r.BackendRefs).Select(b => b.Name))
        {
            var health = publish.All<HealthCheckPolicy>().Single(p => p.Spec.TargetRef.Name == backend);
            Assert.Equal("/health", health.Spec.Default.Config.HttpHealthCheck.RequestPath);
            var policy = publish.All<GcpBackendPolicy>().Single(p => p.Spec.TargetRef.Name == backend);
            Assert.Equal("Service", policy.Spec.TargetRef.Kind);
            Assert.True(policy.Spec.Default.TimeoutSec >= 3600, $"{backend}: timeoutSec {policy.Spec.Default.TimeoutSec}");
            Assert.Contains(publish.All<V1Service>(), s => s.Metadata.Name == backend);
        }

        // The web app gets its route (and sticky circuits) exactly when the AppHost has it.
        var web = routes.SingleOrDefault(r => r.Metadata.Name == "web");
        Assert.Equal(Directory.Exists(Path.Combine(publish.Output, "web")), web is not null);
        if (web is not null)
        {
            Assert.Equal("/", web.Spec.Rules[0].Matches[0].Path.Value);
            Assert.Equal("GENERATED_COOKIE", publish.All<GcpBackendPolicy>().Single(p => p.Spec.TargetRef.Name == "web").Spec.Default.SessionAffinity!.Type);
        }
    }

    [Fact]
    public void EveryObject_RoundTripsThroughTheTypedModel_WithConsistentNamesAndLabels()
    {
        Assert.NotEmpty(publish.Objects);
        foreach (var (file, item) in publish.Objects)
        {
            var meta = ((IKubernetesObject<V1ObjectMeta>)item).Metadata;
            var kubernetesObject = (IKubernetesObject)item;
            Assert.False(string.IsNullOrEmpty(kubernetesObject.ApiVersion), file);
            Assert.False(string.IsNullOrEmpty(kubernetesObject.Kind), file);
            Assert.False(string.IsNullOrEmpty(meta.Name), file);
            Assert.Equal("llm-gateway", meta.Labels["app.kubernetes.io/part-of"]);
            if (kubernetesObject.Kind != "Namespace")
            {
                Assert.Equal(Namespace, meta.NamespaceProperty);
                var app = file.Contains('/') ? file[..file.IndexOf('/')] : meta.Name;
                Assert.Equal(app, meta.Labels["app.kubernetes.io/name"]);
            }

            // Serialising the typed object and loading it back (strictly) gives the same YAML.
            var yaml = KubernetesYaml.Serialize(item);
            var again = Assert.Single(KubernetesYaml.LoadAllFromString(yaml, GkePublish.CustomResourceTypes.ToDictionary(), strict: true));
            Assert.Equal(yaml, KubernetesYaml.Serialize(again));
        }

        // Required fields the API server would reject without.
        foreach (var deployment in publish.All<V1Deployment>())
        {
            AssertSelects(deployment.Spec.Selector.MatchLabels, deployment);
            Assert.All(deployment.Spec.Template.Spec.Containers, c => Assert.False(string.IsNullOrEmpty(c.Image)));
            Assert.All(deployment.Spec.Template.Spec.Containers.SelectMany(c => c.Ports ?? []), p => Assert.InRange(p.Name.Length, 1, 15));
        }
        foreach (var service in publish.All<V1Service>())
        {
            Assert.All(service.Spec.Ports, p => Assert.True(p.Port > 0));
        }
    }

    internal static void AssertSelects(IDictionary<string, string> selector, V1Deployment deployment)
    {
        Assert.NotEmpty(selector);
        var labels = deployment.Spec.Template.Metadata.Labels;
        Assert.All(selector, pair => Assert.Equal(pair.Value, labels[pair.Key]));
    }

    private static bool GitIgnores(string path)
    {
        using var git = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("git", ["check-ignore", "-q", "--no-index", path])
        {
            WorkingDirectory = GkePublish.RepositoryRoot(),
        })!;
        git.WaitForExit(TimeSpan.FromSeconds(30));
        return git.ExitCode == 0;
    }
}
