using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Triton.Inference;
using TritonEmulator.Hosting;
using TritonEmulator.Metrics;
using TritonEmulator.Models.Ensemble;
using TritonEmulator.Models.FasterTransformer;
using TritonEmulator.Models.Python;
using TritonEmulator.Models.TensorRtLlm;
using TritonEmulator.Models.Text;
using TritonEmulator.Models.Vllm;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models;

/// <summary>A model as the engine serves it: its config, backend, scheduler and statistics.</summary>
internal sealed class ServedModel
{
    public required string Name { get; init; }
    public required IReadOnlyList<long> Versions { get; init; }
    public ModelConfig? Config { get; init; }
    public required string State { get; init; }
    public required string Reason { get; init; }
    public IModelBackend? Backend { get; init; }
    public ModelScheduler? Scheduler { get; init; }
    public ModelStatisticsRecorder? Statistics { get; init; }

    public bool IsReady => State == "READY" && Backend is not null;

    public bool Decoupled => Config?.ModelTransactionPolicy?.Decoupled == true;

    /// <summary>The version the server picks (latest), as Triton writes it.</summary>
    public string Version => Versions.Count == 0 ? "1" : Versions[^1].ToString(CultureInfo.InvariantCulture);

    public bool HasVersion(string version) =>
        string.IsNullOrEmpty(version) || Versions.Any(v => v.ToString(CultureInfo.InvariantCulture) == version);
}

/// <summary>
/// The engine: loads the models, answers health, finds models and runs requests through their
/// schedulers. Protocols call it with Triton's tensor messages and get Triton-worded errors.
/// </summary>
internal sealed partial class InferenceServer(
    IModelDefinitionSource source,
    IOptions<EmulatorOptions> options,
    TimeProvider time,
    TritonMetrics metrics,
    GpuModel gpu,
    TokenLanguageModel language,
    VllmModelLoader vllm,
    ILoggerFactory loggerFactory) : IHostedService, IAsyncDisposable
{
    public const string ServerName = "triton";
    public const string ServerVersion = "2.49.0";

    public static IReadOnlyList<string> Extensions { get; } =
        ["model_repository", "schedule_policy", "model_configuration", "parameters", "statistics", "generate"];

    private readonly ILogger _logger = loggerFactory.CreateLogger<InferenceServer>();
    private IReadOnlyList<ServedModel> _models = [];
    private volatile bool _loaded;

    public IReadOnlyList<ServedModel> Models => _models;

    public bool IsLive => true;

    /// <summary>Ready when loading finished and every model in the repository is ready (Triton's strict readiness).</summary>
    public bool IsReady => _loaded && _models.All(static m => m.IsReady);

    public Task StartAsync(CancellationToken cancellationToken)
    {
        // Ensembles load after the models they compose, as in Triton; the index keeps repository order.
        var definitions = source.Load();
        var loaded = new Dictionary<string, ServedModel>(StringComparer.Ordinal);
        foreach (var definition in definitions.Where(static d => !IsEnsemble(d)))
        {
            loaded[definition.Name] = Load(definition, loaded);
        }
        foreach (var definition in definitions.Where(IsEnsemble))
        {
            loaded[definition.Name] = Load(definition, loaded);
        }
        _models = [.. definitions.Select(d => loaded[d.Name])];
        _loaded = true;
        return Task.CompletedTask;
    }

    /// <summary>Models that call other models: the ensemble platform and TensorRT-LLM's BLS model; they load last.</summary>
    private static bool IsEnsemble(ModelDefinition definition) =>
        definition.Config?.Platform == EnsembleModel.PlatformName || TrtLlmBls.Matches(definition.Config);

    private ServedModel Load(ModelDefinition definition, IReadOnlyDictionary<string, ServedModel> loaded)
    {
        if (definition.Config is null || definition.State != "READY")
        {
            LogModelUnavailable(_logger, definition.Name, definition.Reason);
            return new ServedModel { Name = definition.Name, Versions = definition.Versions, Config = definition.Config, State = definition.State, Reason = definition.Reason };
        }
        var config = definition.Config;
        try
        {
            if (IsEnsemble(definition))
            {
                ServedModel? Find(string name) => loaded.GetValueOrDefault(name);
                var ensemble = EnsembleModel.Load(definition.Name, TrtLlmBls.Matches(config) ? TrtLlmBls.AsEnsemble(config, Find) : config, Find);
                var ensembleVersion = definition.Versions.Count == 0 ? "1" : definition.Versions[^1].ToString(CultureInfo.InvariantCulture);
                LogModelLoaded(_logger, definition.Name, ensembleVersion, string.IsNullOrEmpty(config.Platform) ? config.Backend : config.Platform, "ensemble", "composing models");
                return new ServedModel
                {
                    Name = definition.Name,
                    Versions = definition.Versions,
                    Config = config,
                    State = "READY",
                    Reason = "",
                    Backend = ensemble,
                    Statistics = new ModelStatisticsRecorder(definition.Name, ensembleVersion, time, metrics, gpu),
                };
            }
            IModelBackend backend = config.Backend switch
            {
                FasterTransformerModel.BackendName => new FasterTransformerModel(language),
                VllmModel.BackendName => vllm.Load(definition, config),
                TensorRtLlmModel.BackendName => TensorRtLlmModel.Load(definition, config, language, options.Value.Profile, metrics, time, loggerFactory.CreateLogger<TensorRtLlmModel>()),
                PythonModels.BackendName => PythonModels.Load(definition, config, language),
                var other => throw new ModelLoadException($"unable to find backend library for backend '{other}'"),
            };
            var selfConfigured = backend as ISelfConfiguredBackend;
            config = selfConfigured?.CompletedConfig ?? config;
            var timing = selfConfigured?.Timing ?? TimingProfile.ForModel(config, options.Value.Profile);
            var settings = selfConfigured?.Scheduling ?? SchedulerSettings.FromConfig(config);
            var version = definition.Versions.Count == 0 ? "1" : definition.Versions[^1].ToString(CultureInfo.InvariantCulture);
            var statistics = new ModelStatisticsRecorder(definition.Name, version, time, metrics, gpu);
            if (selfConfigured is null or TensorRtLlmModel { OnTimingEngine: true })
            {
                gpu.Register(definition.Name, timing.GpuMemoryTotalBytes, timing.WeightsBytes, timing.KvBytesPerToken, settings.MaxBatchSize);
            }
            var observer = backend is IObservedBackend observed ? observed.Observe(statistics, definition.Name, version) : (ISchedulerObserver)statistics;
            var scheduler = new ModelScheduler(settings, timing, time, observer, loggerFactory.CreateLogger<ModelScheduler>(), backend as IBatchedExecution);
            scheduler.Start();
            LogModelLoaded(_logger, definition.Name, version, config.Backend, settings.Mode.ToString(), timing.Name);
            return new ServedModel
            {
                Name = definition.Name,
                Versions = definition.Versions,
                Config = config,
                State = "READY",
                Reason = "",
                Backend = backend,
                Scheduler = scheduler,
                Statistics = statistics,
            };
        }
        catch (ModelLoadException exception)
        {
            LogModelUnavailable(_logger, definition.Name, exception.Message);
            return new ServedModel { Name = definition.Name, Versions = definition.Versions, Config = config, State = "UNAVAILABLE", Reason = exception.Message };
        }
    }

    public ServedModel? Find(string name) => _models.FirstOrDefault(m => m.Name == name);

    /// <summary>The model to run a request on, or Triton's NotFound / Unavailable error.</summary>
    public ServedModel GetReadyModel(string name, string version)
    {
        var model = Find(name);
        if (model is null || !model.HasVersion(version))
        {
            throw new InferenceException(InferenceErrorCode.NotFound,
                string.IsNullOrEmpty(version)
                    ? $"Request for unknown model: '{name}' is not found"
                    : $"Request for unknown model: '{name}' version {version} is not found");
        }
        if (!model.IsReady)
        {
            throw new InferenceException(InferenceErrorCode.Unavailable,
                $"Request for unknown model: '{name}' has no available versions ({model.Reason})");
        }
        return model;
    }

    /// <summary>Validates, queues and runs one request; yields its responses until the final one.</summary>
    public async IAsyncEnumerable<ModelInferResponse> InferAsync(ServedModel model, ModelInferRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (model.Backend is EnsembleModel ensemble)
        {
            await foreach (var response in RunEnsembleAsync(model, ensemble, request, cancellationToken))
            {
                yield return response;
            }
            yield break;
        }
        var responses = Submit(model, request, cancellationToken);
        await foreach (var response in responses.Reader.ReadAllAsync(cancellationToken))
        {
            yield return response;
        }
    }

    /// <summary>An ensemble request: validated against the ensemble's own config, counted in its own statistics.</summary>
    private async IAsyncEnumerable<ModelInferResponse> RunEnsembleAsync(ServedModel model, EnsembleModel ensemble, ModelInferRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var statistics = model.Statistics!;
        var started = time.GetTimestamp();
        ValidatedRequest validated;
        try
        {
            validated = RequestValidator.Validate(model.Config!, model.Name, model.Version, request);
            SchedulingParameters(request);
        }
        catch (InferenceException exception)
        {
            statistics.Failed(exception.Reason, TimeSpan.Zero, 0);
            throw;
        }
        var index = 0;
        var succeeded = false;
        await using var responses = ensemble.RunAsync(this, model, validated, cancellationToken).GetAsyncEnumerator(cancellationToken);
        try
        {
            while (true)
            {
                bool more;
                try
                {
                    more = await responses.MoveNextAsync();
                }
                catch (InferenceException exception)
                {
                    statistics.Failed(exception.Reason, time.GetElapsedTime(started), index);
                    throw;
                }
                if (!more)
                {
                    break;
                }
                statistics.ResponseWritten(index++, TimeSpan.Zero);
                yield return responses.Current;
            }
            var total = time.GetElapsedTime(started);
            statistics.Executed(validated.BatchSize, validated.BatchSize, total);
            statistics.Succeeded(validated.BatchSize, total, TimeSpan.Zero, total);
            succeeded = true;
        }
        finally
        {
            if (!succeeded && cancellationToken.IsCancellationRequested)
            {
                statistics.Failed(FailureReason.Canceled, time.GetElapsedTime(started), index);
            }
        }
    }

    private ResponseStream Submit(ServedModel model, ModelInferRequest request, CancellationToken cancellationToken)
    {
        var statistics = model.Statistics!;
        var responses = new ResponseStream(request, model.Name, model.Version);
        IScheduledWork work;
        ulong priority;
        TimeSpan timeout;
        try
        {
            var validated = RequestValidator.Validate(model.Config!, model.Name, model.Version, request);
            (priority, timeout) = SchedulingParameters(request);
            work = model.Backend!.CreateWork(validated, responses, model.Decoupled);
        }
        catch (InferenceException exception)
        {
            statistics.Failed(exception.Reason, TimeSpan.Zero, 0);
            throw;
        }
        try
        {
            model.Scheduler!.Enqueue(work, priority, timeout, cancellationToken);
        }
        catch (InferenceException exception)
        {
            statistics.Failed(exception.Reason, TimeSpan.Zero, 0);
            var label = RequestValidator.RequestLabel(request.Id);
            throw new InferenceException(exception.Code,
                exception.Reason == FailureReason.Rejected && exception.Code == InferenceErrorCode.InvalidArgument ? $"{label} {exception.Message}" : exception.Message,
                exception.Reason);
        }
        return responses;
    }

    private static (ulong Priority, TimeSpan Timeout) SchedulingParameters(ModelInferRequest request)
    {
        ulong priority = 0;
        if (request.Parameters.TryGetValue("priority", out var p))
        {
            priority = p.ParameterChoiceCase switch
            {
                InferParameter.ParameterChoiceOneofCase.Int64Param when p.Int64Param >= 0 => (ulong)p.Int64Param,
                InferParameter.ParameterChoiceOneofCase.Uint64Param => p.Uint64Param,
                _ => throw RequestValidator.Invalid($"{RequestValidator.RequestLabel(request.Id)} parameter 'priority' must be an int64 or uint64 >= 0"),
            };
        }
        var timeout = TimeSpan.Zero;
        if (request.Parameters.TryGetValue("timeout", out var t))
        {
            timeout = t.ParameterChoiceCase switch
            {
                InferParameter.ParameterChoiceOneofCase.Int64Param when t.Int64Param >= 0 => TimeSpan.FromMicroseconds(t.Int64Param),
                InferParameter.ParameterChoiceOneofCase.Uint64Param => TimeSpan.FromMicroseconds(t.Uint64Param),
                _ => throw RequestValidator.Invalid($"{RequestValidator.RequestLabel(request.Id)} parameter 'timeout' must be an int64 >= 0 (microseconds)"),
            };
        }
        return (priority, timeout);
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await DisposeAsync();

    public async ValueTask DisposeAsync()
    {
        foreach (var model in _models)
        {
            if (model.Scheduler is { } scheduler)
            {
                await scheduler.DisposeAsync();
            }
            (model.Backend as IDisposable)?.Dispose();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Loaded model {Model} version {Version}: backend {Backend}, {Mode} batching, profile {Profile}")]
    private static partial void LogModelLoaded(ILogger logger, string model, string version, string backend, string mode, string profile);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model {Model} is unavailable: {Reason}")]
    private static partial void LogModelUnavailable(ILogger logger, string model, string reason);
}
