using System.Globalization;
using System.Text;
using k8s;
using k8s.Models;

namespace Aspire.Hosting.Publishing.Kubernetes;

/// <summary>A file of the generated tree, relative to <c>aspirate-output/</c>, with '/' separators.</summary>
internal sealed record GeneratedFile(string Path, string Content);

/// <summary>
/// Turns <see cref="Workload"/>s into the Aspirate-style kustomize tree: a root
/// <c>kustomization.yaml</c>, and per workload a folder with <c>deployment.yaml</c>,
/// <c>service.yaml</c>, <c>kustomization.yaml</c> (environment in a configMapGenerator, secrets
/// in a secretGenerator over the git-ignored <c>.env.secret</c>) and the extra objects.
/// Pure and deterministic: the same input gives the same bytes.
/// </summary>
internal static class ManifestGenerator
{
    public const string PublicGatewayName = "llm-gateway";
    public const string PublicListenerName = "http";
    public const string SecretFileName = ".env.secret";
    public const string SecretExampleFileName = ".env.secret.example";

    private const string GpuResource = "nvidia.com/gpu";
    private const string AcceleratorLabel = "cloud.google.com/gke-accelerator";

    public static IReadOnlyList<GeneratedFile> Generate(IReadOnlyList<Workload> workloads, GkeSettings settings)
    {
        var files = new List<GeneratedFile>();
        var rootResources = new List<string> { "namespace.yaml" };
        files.Add(Yaml("namespace.yaml", new V1Namespace
        {
            ApiVersion = "v1",
            Kind = "Namespace",
            Metadata = new V1ObjectMeta { Name = settings.Namespace, Labels = PartOfLabels() },
        }));

        var isPublic = workloads.Any(w => w.Kind == WorkloadKind.Project && WorkloadPolicies.PublicRoutes.ContainsKey(w.Name));
        if (isPublic)
        {
            rootResources.Add("public-gateway.yaml");
            files.Add(Yaml("public-gateway.yaml", PublicGateway(settings)));
        }

        foreach (var workload in workloads.OrderBy(w => w.Name, StringComparer.Ordinal))
        {
            rootResources.Add(workload.Name);
            files.AddRange(workload.IsTriton ? Triton(workload, settings) : workload.Kind == WorkloadKind.Project
                ? Project(workload, settings, workloads) : Container(workload, settings));
        }

        // Operations: alert Rules (kustomize applies them) and the Cloud Monitoring dashboard (gcloud).
        rootResources.Add(MonitoringManifests.Folder);
        files.AddRange(MonitoringManifests.Generate(settings, Yaml));

        files.Add(Yaml("kustomization.yaml", new Kustomization { Namespace = settings.Namespace, Resources = rootResources }));
        return [.. files.OrderBy(f => f.Path, StringComparer.Ordinal)];
    }

    // ---------------------------------------------------------------- project resources

    private static IEnumerable<GeneratedFile> Project(Workload workload, GkeSettings settings, IReadOnlyList<Workload> workloads)
    {
        var http = HttpPort(workload);
        var environment = workload.Environment.ToList();
        UseHeadlessTriton(environment, workloads);
        foreach (var (key, value) in WorkloadPolicies.ClusterEnvironment.GetValueOrDefault(workload.Name) ?? [])
        {
            AddIfMissing(environment, key, value);
        }
        // Drain: finish streams within the grace period (the gateway sizes its host's shutdown
        // timeout from its own drain settings); keep connections longer than the LB's 600 s.
        if (!WorkloadPolicies.ClusterEnvironment.ContainsKey(workload.Name))
        {
            AddIfMissing(environment, "DOTNET_shutdownTimeoutSeconds",
                (WorkloadPolicies.TerminationGracePeriodSeconds - WorkloadPolicies.PreStopSleepSeconds - 5).ToString(CultureInfo.InvariantCulture));
        }
        AddIfMissing(environment, "Kestrel__Limits__KeepAliveTimeout", "00:10:20");
        environment.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));

        var hasSecret = workload.SecretEnvironmentKeys.Count > 0 || WorkloadPolicies.SecretExamples.ContainsKey(workload.Name);
        var container = new V1Container
        {
            Name = workload.Name,
            Image = workload.Image,
            Args = workload.Args.Count > 0 ? [.. workload.Args] : null,
            Ports = ContainerPorts(workload),
            EnvFrom = EnvFrom(workload.Name, environment.Count > 0, hasSecret),
            Resources = new V1ResourceRequirements
            {
                Requests = Quantities(("cpu", "250m"), ("memory", "256Mi")),
                Limits = Quantities(("cpu", "1"), ("memory", "512Mi")),
            },
            StartupProbe = HttpProbe("/alive", http, periodSeconds: 2, failureThreshold: 30),
            ReadinessProbe = HttpProbe("/health", http, periodSeconds: 5, failureThreshold: 3),
            LivenessProbe = HttpProbe("/alive", http, periodSeconds: 10, failureThreshold: 3),
            Lifecycle = new V1Lifecycle { PreStop = new V1LifecycleHandler { Sleep = new V1SleepAction { Seconds = WorkloadPolicies.PreStopSleepSeconds } } },
            SecurityContext = new V1SecurityContext
            {
                AllowPrivilegeEscalation = false,
                ReadOnlyRootFilesystem = true,
                RunAsNonRoot = true,
                Capabilities = new V1Capabilities { Drop = ["ALL"] },
            },
            VolumeMounts = [new V1VolumeMount { Name = "tmp", MountPath = "/tmp" }],
        };

        var deployment = Deployment(workload, settings, replicas: 2, maxSurge: 1, new V1PodSpec
        {
            AutomountServiceAccountToken = false,
            TerminationGracePeriodSeconds = WorkloadPolicies.TerminationGracePeriodSeconds,
            SecurityContext = NonRootPodSecurity(WorkloadPolicies.DotnetAppUid),
            Containers = [container],
            Volumes = [new V1Volume { Name = "tmp", EmptyDir = new V1EmptyDirVolumeSource() }],
        });

        var resources = new List<string> { "deployment.yaml", "service.yaml", "pdb.yaml", "hpa.yaml", "podmonitoring.yaml" };
        var folder = workload.Name;
        yield return Yaml($"{folder}/deployment.yaml", deployment);
        yield return Yaml($"{folder}/service.yaml", Service(workload, settings, workload.Name, headless: false));
        yield return Yaml($"{folder}/pdb.yaml", new V1PodDisruptionBudget
        {
            ApiVersion = "policy/v1",
            Kind = "PodDisruptionBudget",
            Metadata = Metadata(workload.Name, workload.Name, settings),
            Spec = new V1PodDisruptionBudgetSpec { MinAvailable = 1, Selector = Selector(workload.Name) },
        });
        yield return Yaml($"{folder}/hpa.yaml", Hpa(workload, settings, minReplicas: 2, maxReplicas: 10, new V2MetricSpec
        {
            Type = "Resource",
            Resource = new V2ResourceMetricSource
            {
                Name = "cpu",
                Target = new V2MetricTarget { Type = "Utilization", AverageUtilization = 70 },
            },
        }, scaleDownWindowSeconds: 300));
        // ServiceDefaults exports OpenTelemetry metrics over OTLP; /metrics is scraped where the app maps it.
        yield return Yaml($"{folder}/podmonitoring.yaml", PodMonitoring(workload, settings, http.Name, "/metrics", "30s"));

        if (WorkloadPolicies.PublicRoutes.TryGetValue(workload.Name, out var route))
        {
            resources.Add("gateway-api.yaml");
            var port = workload.Ports.FirstOrDefault(p => p.Name == route.EndpointName) ?? http;
            yield return Yaml($"{folder}/gateway-api.yaml", [.. PublicEntry(workload, settings, route, port)]);
        }

        foreach (var file in KustomizationFor(workload, settings, resources, environment, hasSecret))
        {
            yield return file;
        }
    }

    private static IEnumerable<object> PublicEntry(Workload workload, GkeSettings settings, PublicRoute route, WorkloadPort port)
    {
        yield return new HttpRoute
        {
            Metadata = Metadata(workload.Name, workload.Name, settings),
            Spec = new HttpRouteSpec
            {
                ParentRefs = [new HttpRouteParentRef { Name = PublicGatewayName, SectionName = PublicListenerName }],
                Rules =
                [
                    new HttpRouteRule
                    {
                        Matches = [new HttpRouteMatch { Path = new HttpPathMatch { Type = "PathPrefix", Value = route.PathPrefix } }],
                        BackendRefs = [new HttpRouteBackendRef { Name = workload.Name, Port = port.Port }],
                    },
                ],
            },
        };
        yield return new HealthCheckPolicy
        {
            Metadata = Metadata(workload.Name, workload.Name, settings),
            Spec = new HealthCheckPolicySpec
            {
                Default = new HealthCheckPolicyDefault
                {
                    CheckIntervalSec = 10,
                    TimeoutSec = 5,
                    HealthyThreshold = 1,
                    UnhealthyThreshold = 3,
                    Config = new HealthCheckConfig { Type = "HTTP", HttpHealthCheck = new HttpHealthCheck { RequestPath = "/health" } },
                },
                TargetRef = new PolicyTargetRef { Name = workload.Name },
            },
        };
        yield return new GcpBackendPolicy
        {
            Metadata = Metadata(workload.Name, workload.Name, settings),
            Spec = new GcpBackendPolicySpec
            {
                Default = new GcpBackendPolicyDefault
                {
                    TimeoutSec = WorkloadPolicies.BackendTimeoutSeconds,
                    ConnectionDraining = new GcpConnectionDraining { DrainingTimeoutSec = WorkloadPolicies.TerminationGracePeriodSeconds },
                    SessionAffinity = route.SessionAffinity ? new GcpSessionAffinity { Type = "GENERATED_COOKIE", CookieTtlSec = 0 } : null,
                },
                TargetRef = new PolicyTargetRef { Name = workload.Name },
            },
        };
    }

    private static GatewayApiGateway PublicGateway(GkeSettings settings) => new()
    {
        Metadata = Metadata(PublicGatewayName, PublicGatewayName, settings),
        Spec = new GatewaySpec
        {
            GatewayClassName = settings.GatewayClass,
            Listeners =
            [
                new GatewayListener
                {
                    Name = PublicListenerName,
                    Protocol = "HTTP",
                    Port = 80,
                    AllowedRoutes = new GatewayAllowedRoutes
                    {
                        Namespaces = new GatewayRouteNamespaces { From = "Same" },
                        Kinds = [new GatewayRouteGroupKind { Kind = "HTTPRoute" }],
                    },
                },
            ],
        },
    };

    // ---------------------------------------------------------------- Triton

    private static IEnumerable<GeneratedFile> Triton(Workload workload, GkeSettings settings)
    {
        var http = workload.Ports.FirstOrDefault(p => p.Name == "http") ?? HttpPort(workload);
        var metrics = workload.Ports.FirstOrDefault(p => p.Name == "metrics")
            ?? throw new InvalidOperationException($"'{workload.Name}' has no 'metrics' endpoint for the PodMonitoring.");
        var gpus = new ResourceQuantity(settings.GpuCount.ToString(CultureInfo.InvariantCulture));
        var modelMount = workload.Mounts.FirstOrDefault()
            ?? throw new InvalidOperationException($"'{workload.Name}' has no model repository mount.");

        var container = new V1Container
        {
            Name = workload.Name,
            Image = workload.Image,
            Args = [.. workload.Args],
            Ports = ContainerPorts(workload),
            EnvFrom = workload.Environment.Count > 0 || workload.SecretEnvironmentKeys.Count > 0
                ? EnvFrom(workload.Name, workload.Environment.Count > 0, workload.SecretEnvironmentKeys.Count > 0) : null,
            Resources = new V1ResourceRequirements
            {
                // GPUs cannot be overcommitted: requests equal limits. /dev/shm counts against memory.
                Requests = new Dictionary<string, ResourceQuantity>
                {
                    ["cpu"] = new("4"),
                    ["memory"] = new("32Gi"),
                    [GpuResource] = gpus,
                },
                Limits = new Dictionary<string, ResourceQuantity>
                {
                    ["memory"] = new("32Gi"),
                    [GpuResource] = gpus,
                },
            },
            // Loading large models from the bucket takes minutes: up to 30 min before liveness applies.
            StartupProbe = HttpProbe("/v2/health/ready", http, periodSeconds: 10, failureThreshold: 180),
            ReadinessProbe = HttpProbe("/v2/health/ready", http, periodSeconds: 5, failureThreshold: 3),
            LivenessProbe = HttpProbe("/v2/health/live", http, periodSeconds: 10, failureThreshold: 6),
            SecurityContext = new V1SecurityContext
            {
                AllowPrivilegeEscalation = false,
                RunAsNonRoot = true,
                Capabilities = new V1Capabilities { Drop = ["ALL"] },
            },
            VolumeMounts =
            [
                new V1VolumeMount { Name = "model-repository", MountPath = modelMount.Target, ReadOnlyProperty = true },
                new V1VolumeMount { Name = "dshm", MountPath = "/dev/shm" },
            ],
        };

        var deployment = Deployment(workload, settings, replicas: 1, maxSurge: 1, new V1PodSpec
        {
            ServiceAccountName = workload.Name,
            NodeSelector = new Dictionary<string, string> { [AcceleratorLabel] = settings.Accelerator },
            Tolerations = [new V1Toleration { Key = GpuResource, OperatorProperty = "Exists", Effect = "NoSchedule" }],
            TerminationGracePeriodSeconds = WorkloadPolicies.TerminationGracePeriodSeconds,
            SecurityContext = NonRootPodSecurity(WorkloadPolicies.TritonUid),
            Containers = [container],
            Volumes =
            [
                new V1Volume
                {
                    Name = "model-repository",
                    Csi = new V1CSIVolumeSource
                    {
                        Driver = "gcsfuse.csi.storage.gke.io",
                        ReadOnlyProperty = true,
                        VolumeAttributes = new Dictionary<string, string>
                        {
                            ["bucketName"] = settings.ModelBucket,
                            ["mountOptions"] = "implicit-dirs",
                        },
                    },
                },
                new V1Volume { Name = "dshm", EmptyDir = new V1EmptyDirVolumeSource { Medium = "Memory", SizeLimit = new ResourceQuantity("2Gi") } },
            ],
        });
        // The GCS FUSE CSI webhook injects its sidecar only into pods that ask for it.
        if (workload.Mounts.Count > 1)
        {
            // TensorRT-LLM: the engine files and tokenizer from their own bucket (<model bucket>-engines),
            // read-only at the path the repository's gpt_model_path / tokenizer_dir name (docs/deploy-gke.md).
            var engines = workload.Mounts[1];
            container.VolumeMounts.Add(new V1VolumeMount { Name = "engines", MountPath = engines.Target, ReadOnlyProperty = true });
            deployment.Spec.Template.Spec.Volumes.Add(new V1Volume
            {
                Name = "engines",
                Csi = new V1CSIVolumeSource
                {
                    Driver = "gcsfuse.csi.storage.gke.io",
                    ReadOnlyProperty = true,
                    VolumeAttributes = new Dictionary<string, string>
                    {
                        ["bucketName"] = settings.ModelBucket + "-engines",
                        // Engines are read once at load: large sequential reads, cached on the node.
                        ["mountOptions"] = "implicit-dirs,file-cache:enable-parallel-downloads:true",
                    },
                },
            });
        }
        deployment.Spec.Template.Metadata.Annotations = new Dictionary<string, string> { ["gke-gcsfuse/volumes"] = "true" };

        var folder = workload.Name;
        yield return Yaml($"{folder}/deployment.yaml", deployment);
        yield return Yaml($"{folder}/service.yaml",
            Service(workload, settings, workload.Name, headless: false),
            Service(workload, settings, $"{workload.Name}-headless", headless: true));
        yield return Yaml($"{folder}/serviceaccount.yaml", new V1ServiceAccount
        {
            ApiVersion = "v1",
            Kind = "ServiceAccount",
            Metadata = Metadata(workload.Name, workload.Name, settings),
        });
        yield return Yaml($"{folder}/hpa.yaml", Hpa(workload, settings, minReplicas: 1, maxReplicas: 4, new V2MetricSpec
        {
            Type = "Pods",
            Pods = new V2PodsMetricSource
            {
                Metric = new V2MetricIdentifier { Name = WorkloadPolicies.TritonQueueMetric },
                Target = new V2MetricTarget { Type = "AverageValue", AverageValue = new ResourceQuantity("5") },
            },
        }, scaleDownWindowSeconds: 600));
        yield return Yaml($"{folder}/podmonitoring.yaml", PodMonitoring(workload, settings, metrics.Name, "/metrics", "15s"));

        var resources = new List<string> { "deployment.yaml", "service.yaml", "serviceaccount.yaml", "hpa.yaml", "podmonitoring.yaml" };
        foreach (var file in KustomizationFor(workload, settings, resources, workload.Environment, workload.SecretEnvironmentKeys.Count > 0))
        {
            yield return file;
        }
    }

    // ---------------------------------------------------------------- other containers

    private static IEnumerable<GeneratedFile> Container(Workload workload, GkeSettings settings)
    {
        var hasSecret = workload.SecretEnvironmentKeys.Count > 0;
        var deployment = Deployment(workload, settings, replicas: 1, maxSurge: 1, new V1PodSpec
        {
            AutomountServiceAccountToken = false,
            Containers =
            [
                new V1Container
                {
                    Name = workload.Name,
                    Image = workload.Image,
                    Command = workload.Entrypoint is { } entrypoint ? [entrypoint] : null,
                    Args = workload.Args.Count > 0 ? [.. workload.Args] : null,
                    Ports = ContainerPorts(workload),
                    EnvFrom = workload.Environment.Count > 0 || hasSecret ? EnvFrom(workload.Name, workload.Environment.Count > 0, hasSecret) : null,
                    // Ready once the first port accepts connections (a plain TCP server such as Redis has no HTTP probe).
                    ReadinessProbe = workload.Ports.Count > 0
                        ? new V1Probe { TcpSocket = new V1TCPSocketAction { Port = workload.Ports[0].Name }, PeriodSeconds = 5, FailureThreshold = 3 }
                        : null,
                    SecurityContext = new V1SecurityContext { AllowPrivilegeEscalation = false },
                },
            ],
        });
        var folder = workload.Name;
        yield return Yaml($"{folder}/deployment.yaml", deployment);
        var resources = new List<string> { "deployment.yaml" };
        if (workload.Ports.Count > 0)
        {
            resources.Add("service.yaml");
            yield return Yaml($"{folder}/service.yaml", Service(workload, settings, workload.Name, headless: false));
        }
        foreach (var file in KustomizationFor(workload, settings, resources, workload.Environment, hasSecret))
        {
            yield return file;
        }
    }

    // ---------------------------------------------------------------- shared pieces

    private static IEnumerable<GeneratedFile> KustomizationFor(
        Workload workload, GkeSettings settings, List<string> resources, IReadOnlyList<KeyValuePair<string, string>> environment, bool hasSecret)
    {
        // The namespace puts the generated ConfigMap and Secret next to the Deployment, so kustomize
        // rewrites the Deployment's references to their hashed names.
        var kustomization = new Kustomization { Namespace = settings.Namespace, Resources = resources };
        if (environment.Count > 0)
        {
            kustomization.ConfigMapGenerator =
            [
                new KustomizeGenerator { Name = $"{workload.Name}-env", Literals = [.. environment.Select(e => $"{e.Key}={e.Value}")] },
            ];
        }
        if (hasSecret)
        {
            kustomization.SecretGenerator = [new KustomizeGenerator { Name = $"{workload.Name}-secrets", Envs = [SecretFileName] }];
            var example = new StringBuilder()
                .Append("# Copy to ").Append(SecretFileName).Append(" (git-ignored, never committed) and fill in the values.\n")
                .Append("# One KEY=VALUE per line; kustomize turns it into the Secret ").Append(workload.Name).Append("-secrets.\n");
            foreach (var key in workload.SecretEnvironmentKeys)
            {
                example.Append(key).Append("=\n");
            }
            if (WorkloadPolicies.SecretExamples.TryGetValue(workload.Name, out var lines))
            {
                foreach (var line in lines)
                {
                    example.Append(line).Append('\n');
                }
            }
            yield return new GeneratedFile($"{workload.Name}/{SecretExampleFileName}", example.ToString());
        }
        yield return Yaml($"{workload.Name}/kustomization.yaml", kustomization);
    }

    /// <summary>Pods run as the image's non-root user and group, with the runtime's default seccomp profile.</summary>
    private static V1PodSecurityContext NonRootPodSecurity(long uid) => new()
    {
        RunAsNonRoot = true,
        RunAsUser = uid,
        RunAsGroup = uid,
        FsGroup = uid,
        SeccompProfile = new V1SeccompProfile { Type = "RuntimeDefault" },
    };

    private static V1Deployment Deployment(Workload workload, GkeSettings settings, int replicas, int maxSurge, V1PodSpec pod) => new()
    {
        ApiVersion = "apps/v1",
        Kind = "Deployment",
        Metadata = Metadata(workload.Name, workload.Name, settings),
        Spec = new V1DeploymentSpec
        {
            Replicas = replicas,
            Selector = Selector(workload.Name),
            Strategy = new V1DeploymentStrategy
            {
                Type = "RollingUpdate",
                RollingUpdate = new V1RollingUpdateDeployment { MaxSurge = maxSurge, MaxUnavailable = 0 },
            },
            Template = new V1PodTemplateSpec
            {
                Metadata = new V1ObjectMeta { Labels = Labels(workload.Name) },
                Spec = pod,
            },
        },
    };

    private static V1Service Service(Workload workload, GkeSettings settings, string name, bool headless) => new()
    {
        ApiVersion = "v1",
        Kind = "Service",
        Metadata = Metadata(name, workload.Name, settings),
        Spec = new V1ServiceSpec
        {
            Type = "ClusterIP",
            // Headless: DNS returns every ready pod, so a client can see (and balance over) each replica.
            ClusterIP = headless ? "None" : null,
            Selector = Selector(workload.Name).MatchLabels,
            Ports = [.. workload.Ports.Select(p => new V1ServicePort
            {
                Name = p.Name,
                Port = p.Port,
                TargetPort = p.Name,
                Protocol = "TCP",
                AppProtocol = p.Http2 ? "kubernetes.io/h2c" : null,
            })],
        },
    };

    private static V2HorizontalPodAutoscaler Hpa(
        Workload workload, GkeSettings settings, int minReplicas, int maxReplicas, V2MetricSpec metric, int scaleDownWindowSeconds) => new()
    {
        ApiVersion = "autoscaling/v2",
        Kind = "HorizontalPodAutoscaler",
        Metadata = Metadata(workload.Name, workload.Name, settings),
        Spec = new V2HorizontalPodAutoscalerSpec
        {
            ScaleTargetRef = new V2CrossVersionObjectReference { ApiVersion = "apps/v1", Kind = "Deployment", Name = workload.Name },
            MinReplicas = minReplicas,
            MaxReplicas = maxReplicas,
            Metrics = [metric],
            Behavior = new V2HorizontalPodAutoscalerBehavior
            {
                ScaleDown = new V2HPAScalingRules { StabilizationWindowSeconds = scaleDownWindowSeconds },
            },
        },
    };

    private static PodMonitoring PodMonitoring(Workload workload, GkeSettings settings, string port, string path, string interval) => new()
    {
        Metadata = Metadata(workload.Name, workload.Name, settings),
        Spec = new PodMonitoringSpec
        {
            Selector = Selector(workload.Name),
            Endpoints = [new PodMonitoringEndpoint { Port = port, Path = path, Interval = interval }],
        },
    };

    private static V1Probe HttpProbe(string path, WorkloadPort port, int periodSeconds, int failureThreshold) => new()
    {
        HttpGet = new V1HTTPGetAction { Path = path, Port = port.Name },
        PeriodSeconds = periodSeconds,
        TimeoutSeconds = 3,
        FailureThreshold = failureThreshold,
    };

    private static List<V1ContainerPort> ContainerPorts(Workload workload) =>
        [.. workload.Ports.Select(p => new V1ContainerPort { Name = p.Name, ContainerPort = p.Port, Protocol = "TCP" })];

    private static List<V1EnvFromSource> EnvFrom(string name, bool hasEnvironment, bool hasSecret)
    {
        var sources = new List<V1EnvFromSource>();
        if (hasEnvironment)
        {
            sources.Add(new V1EnvFromSource { ConfigMapRef = new V1ConfigMapEnvSource { Name = $"{name}-env" } });
        }
        if (hasSecret)
        {
            sources.Add(new V1EnvFromSource { SecretRef = new V1SecretEnvSource { Name = $"{name}-secrets" } });
        }
        return sources;
    }

    private static WorkloadPort HttpPort(Workload workload) =>
        workload.Ports.FirstOrDefault(p => p.Name == "http")
        ?? workload.Ports.FirstOrDefault(p => !p.Http2)
        ?? throw new InvalidOperationException($"'{workload.Name}' has no HTTP endpoint for its probes.");

    /// <summary>
    /// A reference to Triton's endpoints becomes its headless Service: the ClusterIP Service would
    /// give one address that kube-proxy balances per connection, but the gateway routes each request
    /// by load over every pod, so it resolves <c>{triton}-headless</c> to all pod addresses instead
    /// of reading <c>services__{triton}__*</c>.
    /// </summary>
    private static void UseHeadlessTriton(List<KeyValuePair<string, string>> environment, IReadOnlyList<Workload> workloads)
    {
        foreach (var triton in workloads.Where(w => w.IsTriton))
        {
            var prefix = $"services__{triton.Name}__";
            var grpc = triton.Ports.FirstOrDefault(p => p.Name == "grpc");
            if (grpc is null || environment.RemoveAll(e => e.Key.StartsWith(prefix, StringComparison.Ordinal)) == 0)
            {
                continue;
            }
            environment.Add(new(WorkloadPolicies.TritonHeadlessServiceKey, $"{triton.Name}-headless:{grpc.Port.ToString(CultureInfo.InvariantCulture)}"));
            if (triton.Ports.FirstOrDefault(p => p.Name == "metrics") is { } metrics)
            {
                environment.Add(new(WorkloadPolicies.TritonHeadlessMetricsPortKey, metrics.Port.ToString(CultureInfo.InvariantCulture)));
            }
        }
    }

    private static void AddIfMissing(List<KeyValuePair<string, string>> environment, string key, string value)
    {
        if (!environment.Any(e => e.Key == key))
        {
            environment.Add(new(key, value));
        }
    }

    private static Dictionary<string, ResourceQuantity> Quantities(params (string Name, string Value)[] values) =>
        values.ToDictionary(v => v.Name, v => new ResourceQuantity(v.Value));

    private static V1ObjectMeta Metadata(string name, string app, GkeSettings settings) =>
        new() { Name = name, NamespaceProperty = settings.Namespace, Labels = Labels(app) };

    internal static Dictionary<string, string> Labels(string app) => new()
    {
        ["app.kubernetes.io/name"] = app,
        ["app.kubernetes.io/part-of"] = GkeSettings.PartOf,
        ["app.kubernetes.io/managed-by"] = "aspire-gke-publisher",
    };

    private static Dictionary<string, string> PartOfLabels() => new()
    {
        ["app.kubernetes.io/part-of"] = GkeSettings.PartOf,
        ["app.kubernetes.io/managed-by"] = "aspire-gke-publisher",
    };

    private static V1LabelSelector Selector(string app) => new()
    {
        MatchLabels = new Dictionary<string, string>
        {
            ["app.kubernetes.io/name"] = app,
            ["app.kubernetes.io/part-of"] = GkeSettings.PartOf,
        },
    };

    internal static GeneratedFile Yaml(string path, params object[] documents)
    {
        var text = new StringBuilder();
        foreach (var document in documents)
        {
            if (text.Length > 0)
            {
                text.Append("---\n");
            }
            text.Append(KubernetesYaml.Serialize(document).ReplaceLineEndings("\n"));
            if (text[^1] != '\n')
            {
                text.Append('\n');
            }
        }
        return new GeneratedFile(path, text.ToString());
    }
}
