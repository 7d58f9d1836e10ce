using System.Globalization;
using Gateway.Routing;
using Gateway.Text;
using Gateway.Triton;
using Gateway.Triton.Contracts;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Triton.Inference;

namespace Gateway.Models;

/// <summary>
/// Model discovery (section <c>Gateway:ModelDiscovery</c>): text-contract models that Triton serves but
/// the catalogue does not name join it, so a model folder dropped into the repository is served
/// without configuration: Triton's vLLM backend (<c>backend: "vllm"</c>) and TensorRT-LLM's ensemble or
/// BLS model (by its metadata: <c>text_input</c> BYTES + <c>max_tokens</c> INT32): public id = the
/// Triton model name, chat template from the config parameter <c>chat_template</c>, context window
/// from <c>max_model_len</c>, both falling back to the defaults below. Token-id contracts
/// (FasterTransformer) need a tokenizer and ids the config does not carry, so they stay configured.
/// </summary>
public sealed class ModelDiscoveryOptions
{
    public const string SectionName = "Gateway:ModelDiscovery";

    public bool Enabled { get; set; }

    /// <summary>How often Triton's repository index is read again.</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(30);

    public string DefaultChatTemplate { get; set; } = ChatTemplates.ChatMl;

    public int DefaultContextWindow { get; set; } = 4096;

    /// <summary>Deadline of each call to Triton (RepositoryIndex, ModelConfig, ModelMetadata); a replica that does not answer in time is skipped this round.</summary>
    public TimeSpan CallTimeout { get; set; } = TimeSpan.FromSeconds(5);
}

internal sealed class ModelDiscoveryOptionsValidator : IValidateOptions<ModelDiscoveryOptions>
{
    public ValidateOptionsResult Validate(string? name, ModelDiscoveryOptions options)
    {
        var failures = new List<string>();
        if (options.Interval <= TimeSpan.Zero)
        {
            failures.Add($"{ModelDiscoveryOptions.SectionName}:Interval must be positive (was {options.Interval}).");
        }
        if (!ChatTemplates.IsKnown(options.DefaultChatTemplate))
        {
            failures.Add($"{ModelDiscoveryOptions.SectionName}:DefaultChatTemplate '{options.DefaultChatTemplate}' is unknown (known: {string.Join(", ", ChatTemplates.Names)}).");
        }
        if (options.CallTimeout <= TimeSpan.Zero)
        {
            failures.Add($"{ModelDiscoveryOptions.SectionName}:CallTimeout must be positive (was {options.CallTimeout}).");
        }
        if (options.DefaultContextWindow < 2)
        {
            failures.Add($"{ModelDiscoveryOptions.SectionName}:DefaultContextWindow must be at least 2 (was {options.DefaultContextWindow}).");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

internal sealed partial class TritonModelDiscovery(
    IOptions<ModelDiscoveryOptions> options,
    IModelCatalog catalog,
    TritonReplicaSet replicas,
    TimeProvider time,
    ILogger<TritonModelDiscovery> logger) : BackgroundService
{
    public const string ChatTemplateParameter = "chat_template";
    public const string ContextWindowParameter = "max_model_len";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.Enabled || catalog is not ModelCatalog models)
        {
            return;
        }
        using var timer = new PeriodicTimer(options.Value.Interval, time);
        try
        {
            do
            {
                await DiscoverAsync(models, stoppingToken).ConfigureAwait(false);
            }
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Reads the index of the first replica that answers and adds the new text-contract models. Each
    /// call has a deadline (<see cref="ModelDiscoveryOptions.CallTimeout"/>, on the injected clock): a
    /// replica that accepts the call and never answers is skipped for this round, never waited on.
    /// </summary>
    internal async Task DiscoverAsync(ModelCatalog models, CancellationToken cancellationToken)
    {
        var callTimeout = options.Value.CallTimeout;
        foreach (var replica in replicas.Replicas)
        {
            if (!replicas.TryGetChannel(replica, out var channel))
            {
                continue; // left discovery since the snapshot
            }
            try
            {
                var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
                var index = await WithDeadlineAsync(callTimeout, cancellationToken,
                    token => client.RepositoryIndexAsync(new RepositoryIndexRequest { Ready = true }, cancellationToken: token).ResponseAsync).ConfigureAwait(false);
                foreach (var entry in index.Models)
                {
                    if (models.ServesTritonModel(entry.Name))
                    {
                        continue;
                    }
                    var config = (await WithDeadlineAsync(callTimeout, cancellationToken,
                        token => client.ModelConfigAsync(new ModelConfigRequest { Name = entry.Name }, cancellationToken: token).ResponseAsync).ConfigureAwait(false)).Config;
                    var metadata = string.Equals(config.Backend, TritonContracts.Vllm, StringComparison.OrdinalIgnoreCase)
                        ? null
                        : await WithDeadlineAsync(callTimeout, cancellationToken,
                            token => client.ModelMetadataAsync(new ModelMetadataRequest { Name = entry.Name }, cancellationToken: token).ResponseAsync).ConfigureAwait(false);
                    if (ToCatalogEntry(config, metadata, options.Value) is { } model && models.TryAdd(entry.Name, model))
                    {
                        LogDiscovered(logger, entry.Name, model.Contract, model.ChatTemplate, model.ContextWindow);
                    }
                }
                return;
            }
            catch (RpcException ex) when (!cancellationToken.IsCancellationRequested)
            {
                LogIndexFailed(logger, replica.Grpc, ex.StatusCode);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                LogCallTimedOut(logger, replica.Grpc, callTimeout.TotalSeconds);
            }
            catch (ObjectDisposedException) when (replica.IsRemoved)
            {
                // It left discovery mid-read and its channel was released: try the next one.
            }
        }
    }

    /// <summary>One call under its own deadline, linked to the round's token; the deadline ends it with <see cref="OperationCanceledException"/>.</summary>
    private async Task<T> WithDeadlineAsync<T>(TimeSpan timeout, CancellationToken cancellationToken, Func<CancellationToken, Task<T>> call)
    {
        using var deadline = new CancellationTokenSource(timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        try
        {
            return await call(linked.Token).ConfigureAwait(false);
        }
        catch (RpcException ex) when (deadline.IsCancellationRequested && ex.StatusCode == StatusCode.Cancelled)
        {
            throw new OperationCanceledException("The Triton call ran past its deadline.", ex, deadline.Token);
        }
    }

    /// <summary>
    /// The catalogue entry for a Triton model, or null when it is not a user-facing text-contract model:
    /// <c>backend: "vllm"</c>, or a TensorRT-LLM ensemble / BLS model, told by its metadata
    /// (<c>text_input</c> BYTES and <c>max_tokens</c> INT32). TensorRT-LLM's preprocessing, tensorrt_llm
    /// and postprocessing models have neither, so they are never listed.
    /// </summary>
    internal static ModelOptions? ToCatalogEntry(ModelConfig config, ModelMetadataResponse? metadata, ModelDiscoveryOptions options)
    {
        string contract;
        if (string.Equals(config.Backend, TritonContracts.Vllm, StringComparison.OrdinalIgnoreCase))
        {
            contract = TritonContracts.Vllm;
        }
        else if (metadata is not null && IsTensorRtLlmTextModel(metadata))
        {
            contract = TritonContracts.TensorRtLlm;
        }
        else
        {
            return null;
        }
        var template = config.Parameters.TryGetValue(ChatTemplateParameter, out var named) && ChatTemplates.IsKnown(named.StringValue)
            ? named.StringValue
            : options.DefaultChatTemplate;
        var window = config.Parameters.TryGetValue(ContextWindowParameter, out var length)
            && int.TryParse(length.StringValue, NumberStyles.None, CultureInfo.InvariantCulture, out var parsed) && parsed >= 2
                ? parsed
                : options.DefaultContextWindow;
        return new ModelOptions
        {
            TritonModel = config.Name,
            Contract = contract,
            ChatTemplate = template,
            ContextWindow = window,
            MaxOutputTokens = Math.Max(1, window / 2),
            OwnedBy = "triton",
        };
    }

    /// <summary>TensorRT-LLM's text-in, text-out face: inputs <c>text_input</c> BYTES and <c>max_tokens</c> INT32.</summary>
    internal static bool IsTensorRtLlmTextModel(ModelMetadataResponse metadata)
    {
        bool text = false, maxTokens = false;
        foreach (var input in metadata.Inputs)
        {
            text |= input is { Name: "text_input", Datatype: "BYTES" };
            maxTokens |= input is { Name: "max_tokens", Datatype: "INT32" };
        }
        return text && maxTokens;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Discovered Triton model {Model} ({Contract}, chat template {Template}, context {ContextWindow})")]
    private static partial void LogDiscovered(ILogger logger, string model, string contract, string template, int contextWindow);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model discovery: {Replica} did not answer within {Seconds} s; skipped this round")]
    private static partial void LogCallTimedOut(ILogger logger, Uri replica, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model discovery could not read the repository index of {Replica}: {Status}")]
    private static partial void LogIndexFailed(ILogger logger, Uri replica, StatusCode status);
}
