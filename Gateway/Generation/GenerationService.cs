using System.Diagnostics;
using Gateway.Auth;
using Gateway.Errors;
using Gateway.Ledger;
using Gateway.Models;
using Gateway.Quotas;
using Gateway.Routing;
using Gateway.Structured;
using Gateway.Text;
using Gateway.Telemetry;
using Gateway.Triton;
using Gateway.Triton.Contracts;
using Microsoft.Extensions.Options;
using Triton.Inference;

namespace Gateway.Generation;

/// <summary>The pipeline both faces share: catalogue, prompt, limits, quota, Triton stream, text.</summary>
internal interface IGenerationService
{
    /// <summary>
    /// Validates and starts a generation and waits for Triton's first response, so every failure
    /// up to the first token is a <see cref="GatewayException"/> the face can still answer with a
    /// status. Dispose the result to end it (settles the quota, cancels Triton if unfinished).
    /// </summary>
    Task<GenerationStream> StartAsync(GenerationRequest request, Caller caller, CancellationToken cancellationToken);
}

internal sealed partial class GenerationService(
    IModelCatalog catalog,
    IQuotaLimiter quotas,
    ITritonRouter router,
    IOptions<RoutingOptions> routingOptions,
    IOptions<TritonOptions> tritonOptions,
    GatewayTelemetry telemetry,
    IUsageLedger ledger,
    TimeProvider time,
    ILogger<GenerationService> logger) : IGenerationService
{
    public async Task<GenerationStream> StartAsync(GenerationRequest request, Caller caller, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        var operation = request.IsChat ? "chat" : "text_completion";
        if (!catalog.TryGet(request.Model, out var model))
        {
            throw new GatewayException(GatewayError.ModelNotFound, $"The model `{request.Model}` does not exist.", "model", "model_not_found");
        }
        if (!caller.MayUse(model.Id) && caller.IsManaged)
        {
            // A managed key's allow-list hides the other models: the same answer as an unknown one.
            throw new GatewayException(GatewayError.ModelNotFound, $"The model `{request.Model}` does not exist.", "model", "model_not_found");
        }
        if (!caller.MayUse(model.Id))
        {
            throw new GatewayException(GatewayError.PermissionDenied, $"The API key may not use the model `{model.Id}`.", "model", "model_not_allowed");
        }

        if (request.Guide is not null && !model.Contract.SupportsGuidedDecoding)
        {
            var supported = string.Join(", ", catalog.Models.Where(m => m.Contract.SupportsGuidedDecoding && caller.MayUse(m.Id)).Select(m => $"'{m.Id}'"));
            throw new GatewayException(GatewayError.Unsupported,
                $"The model `{model.Id}` runs on Triton's {model.Contract.Name} backend, which has no constrained (guided) decoding, so '{request.GuideParam}' cannot be honoured. "
                + (supported.Length > 0 ? $"Models that support it: {supported}." : "No model of this gateway supports it (models on the vllm and tensorrtllm backends do)."),
                request.GuideParam, "unsupported_parameter");
        }
        var guide = request.Guide;
        if (guide is null && ToolCallTags.Needed(request.Tools))
        {
            guide = StrictToolsUnderAuto(model, request.Tools!, caller);
        }
        var messages = request.IsChat ? ToolPrompts.Prepare(request.Messages!, request.Tools, model.Options.ToolCallParser) : null;
        var prompt = request.IsChat ? model.ChatTemplate.Render(messages!) : request.Prompt ?? "";
        var promptIds = model.Tokenizer.Encode(prompt);
        var promptTokens = promptIds.Count;
        var options = model.Options;
        var promptParam = request.IsChat ? "messages" : "prompt";
        if (request.MaxTokens is { } asked && asked > options.MaxOutputTokens)
        {
            throw new GatewayException(GatewayError.InvalidRequest,
                $"{request.MaxTokensParam} is too large: {asked}. This model supports at most {options.MaxOutputTokens} completion tokens.",
                request.MaxTokensParam, "invalid_value");
        }
        if (options.MaxInputTokens > 0 && promptTokens > options.MaxInputTokens)
        {
            throw new GatewayException(GatewayError.ContextLengthExceeded,
                $"This model's maximum input length is {options.MaxInputTokens} tokens. However, your {promptParam} has {promptTokens} tokens. Please reduce the length of the {promptParam}.",
                promptParam, "context_length_exceeded");
        }
        var maxTokens = request.MaxTokens ?? Math.Min(options.MaxOutputTokens, options.ContextWindow - promptTokens);
        if (maxTokens < 1 || promptTokens + maxTokens > options.ContextWindow)
        {
            throw new GatewayException(GatewayError.ContextLengthExceeded,
                $"This model's maximum context length is {options.ContextWindow} tokens. However, you requested {promptTokens + Math.Max(maxTokens, 1)} tokens ({promptTokens} in the {promptParam}, {Math.Max(maxTokens, 1)} for the completion). Please reduce the length of the {promptParam} or the completion.",
                promptParam, "context_length_exceeded");
        }

        var stops = request.IsChat ? [.. request.Stop, .. model.ChatTemplate.StopStrings] : request.Stop;
        var stopIds = new List<IReadOnlyList<int>>(stops.Count);
        foreach (var stop in stops)
        {
            stopIds.Add(model.Tokenizer.Encode(stop));
        }

        if (caller.MonthlyTokenBudget > 0 && ledger.SpentThisMonth(caller.LedgerKeyId) is var spent && spent >= caller.MonthlyTokenBudget)
        {
            telemetry.RecordRequest(operation, model.Id, caller.Tenant, "budget_exceeded", time.GetElapsedTime(started), "budget_exceeded");
            telemetry.RecordBudgetRefusal(caller.Tenant);
            RecordRefusal(caller, model.Id, operation, "budget_exceeded", started);
            var now = time.GetUtcNow().UtcDateTime;
            var reset = new DateTime(now.Year, now.Month, 1, 0, 0, 0, DateTimeKind.Utc).AddMonths(1);
            throw new GatewayException(GatewayError.RateLimited,
                $"The API key's monthly token budget is spent: {spent} of {caller.MonthlyTokenBudget} tokens used this month. It resets on {reset:yyyy-MM-dd} (UTC); an admin can raise monthly_token_budget.",
                null, "budget_exceeded", reset - now, type: "insufficient_quota");
        }

        var decision = await quotas.TryReserveAsync(caller, promptTokens + maxTokens, cancellationToken).ConfigureAwait(false);
        if (!decision.Granted)
        {
            telemetry.RecordRequest(operation, model.Id, caller.Tenant, "rate_limited", time.GetElapsedTime(started), "rate_limited");
            RecordRefusal(caller, model.Id, operation, "rate_limited", started);
            throw new GatewayException(GatewayError.RateLimited, decision.Message ?? "Rate limit reached.", null, "rate_limit_exceeded",
                decision.RetryAfter < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : decision.RetryAfter, type: decision.ExceededLimit);
        }

        var id = (request.IsChat ? "chatcmpl-" : "cmpl-") + Guid.CreateVersion7(time.GetUtcNow()).ToString("N");
        var activity = telemetry.ActivitySource.StartActivity($"{operation} {model.Id}", ActivityKind.Internal);
        activity?.SetTag("gen_ai.operation.name", operation);
        activity?.SetTag("gen_ai.provider.name", "triton");
        activity?.SetTag("gen_ai.request.model", model.Id);
        activity?.SetTag("gen_ai.request.max_tokens", maxTokens);
        activity?.SetTag("gen_ai.response.id", id);
        activity?.SetTag("gateway.tenant", caller.Tenant);
        activity?.SetTag("gen_ai.usage.input_tokens", promptTokens);

        var input = new TritonGenerationInput(id, options.TritonModel, options.TritonModelVersion, promptIds.Count > 0 ? promptIds : [options.StartId],
            maxTokens, request.Sampling, stopIds, options.EndId, options.StartId, request.Priority)
        {
            Prompt = prompt,
            StopStrings = stops,
            Guide = guide,
        };
        var tritonRequest = model.Contract.CreateRequest(input);
        var settings = tritonOptions.Value;
        var scorers = routingOptions.Value.Scorers;
        var context = new GenerationContext(id, model, caller, operation, promptTokens, maxTokens, stops, started, decision.Reservation!, activity);
        try
        {
            List<TritonReplica>? tried = null;
            var route = new RouteRequest(promptIds.Count > 0 ? promptIds.Count : 1, maxTokens, request.Priority, options.TritonModel, options.TritonModelVersion)
            {
                PrefixKeys = scorers.PrefixWeight > 0 ? PrefixKeys.Compute(promptIds, scorers.PrefixBlockSize, options.TritonModel) : null,
                Tenant = request.SubTenant is { } sub ? caller.Tenant + "/" + sub : caller.Tenant,
            };
            for (var attempt = 0; ; attempt++)
            {
                var lease = await router.AcquireAsync(route, tried, cancellationToken).ConfigureAwait(false);
                var endpoint = lease.Replica.Grpc;
                var routed = lease.Decision;
                activity?.SetTag("gateway.route.replica", endpoint.Authority);
                activity?.SetTag("gateway.route.score", routed.Score);
                activity?.SetTag("gateway.route.load_score", routed.Load);
                activity?.SetTag("gateway.route.candidates", routed.Candidates);
                activity?.SetTag("gateway.route.prefix_blocks", routed.PrefixBlocks);
                activity?.SetTag("gateway.route.prefix_matched_blocks", routed.MatchedBlocks);
                activity?.SetTag("gateway.route.prefix_matched_tokens", routed.MatchedBlocks * scorers.PrefixBlockSize);
                LogRouted(logger, id, endpoint, attempt, routed.MatchedBlocks * scorers.PrefixBlockSize, routed.MatchedBlocks, routed.PrefixBlocks, routed.Score, routed.Load, routed.Candidates);
                var callActivity = telemetry.ActivitySource.StartActivity("triton ModelStreamInfer", ActivityKind.Client);
                callActivity?.SetTag("rpc.system", "grpc");
                callActivity?.SetTag("rpc.service", "inference.GRPCInferenceService");
                callActivity?.SetTag("rpc.method", "ModelStreamInfer");
                callActivity?.SetTag("server.address", endpoint.Host);
                callActivity?.SetTag("server.port", endpoint.Port);
                callActivity?.SetTag("triton.model", options.TritonModel);
                callActivity?.SetTag("gateway.attempt", attempt);
                TritonCall? call = null;
                try
                {
                    // The lease keeps the replica's channel open even if the replica leaves discovery now.
                    var waitStarted = time.GetTimestamp();
                    call = await TritonCall.StartAsync(lease.Replica.Channel.CreateCallInvoker(), tritonRequest, callActivity, time, settings.FirstTokenTimeout, cancellationToken).ConfigureAwait(false);
                    var first = await call.ReadAsync(null).ConfigureAwait(false)
                        ?? throw new TritonCallException(TritonFailure.EndedEarly, "Triton closed the stream before the first response.");
                    var backendWait = time.GetElapsedTime(waitStarted);
                    return new GenerationStream(context, call, lease, callActivity, model.Contract.CreateDecoder(input), first, backendWait, settings, telemetry, ledger, time, logger);
                }
                // Only transport failures are retried, and only before the first token (this loop ends at it):
                // a deterministic rejection would fail the same way on every replica.
                catch (TritonCallException ex) when (ex.Failure is TritonFailure.Transport or TritonFailure.EndedEarly && attempt + 1 < settings.MaxAttempts)
                {
                    LogAttemptFailed(logger, id, endpoint, attempt, ex.Failure, ex.Message);
                    lease.Failed(ex.Failure, ex.Message);
                    callActivity?.SetStatus(ActivityStatusCode.Error, ex.Failure.ToString());
                    callActivity?.Dispose();
                    if (call is not null)
                    {
                        await call.DisposeAsync().ConfigureAwait(false);
                    }
                    lease.Dispose(); // after the call: the last lease of a departed replica releases its channel
                    (tried ??= []).Add(lease.Replica);
                }
                catch (Exception ex)
                {
                    if (ex is TritonCallException failed)
                    {
                        lease.Failed(failed.Failure, failed.Message);
                    }
                    callActivity?.SetStatus(ActivityStatusCode.Error, ex.GetType().Name);
                    callActivity?.Dispose();
                    if (call is not null)
                    {
                        await call.DisposeAsync().ConfigureAwait(false);
                    }
                    lease.Dispose();
                    if (ex is TritonCallException triton)
                    {
                        LogAttemptFailed(logger, id, endpoint, attempt, triton.Failure, triton.Message);
                        throw triton.ToGateway(streaming: false, settings.FirstTokenTimeout);
                    }
                    throw;
                }
            }
        }
        catch (Exception ex)
        {
            await context.Reservation.SettleAsync(0).ConfigureAwait(false);
            var outcome = ex is GatewayException gateway ? gateway.Outcome : ex is OperationCanceledException ? "cancelled" : "error";
            activity?.SetStatus(ActivityStatusCode.Error, outcome);
            activity?.Dispose();
            telemetry.RecordRequest(operation, model.Id, caller.Tenant, outcome, time.GetElapsedTime(started), outcome);
            // It reached generation and never produced a token: a failed (or cancelled) row with no tokens billed.
            ledger.Record(new UsageRecord
            {
                RequestId = id,
                KeyId = caller.LedgerKeyId,
                KeyName = caller.LedgerKeyName,
                Tenant = caller.Tenant,
                Model = model.Id,
                Operation = operation,
                Gateway = UsageRecord.ThisGateway,
                Status = ex is OperationCanceledException ? UsageStatus.Cancelled : UsageStatus.Failed,
                Reason = outcome,
                DurationMs = time.GetElapsedTime(started).TotalMilliseconds,
                StartedAtMs = (time.GetUtcNow() - time.GetElapsedTime(started)).ToUnixTimeMilliseconds(),
            });
            throw;
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Request {RequestId} attempt {Attempt} routed to {Endpoint}: prefix {MatchedTokens} tokens matched ({MatchedBlocks} of {PrefixBlocks} blocks), score {Score:0.###} (load {Load:0.###}) over {Candidates} candidates")]
    private static partial void LogRouted(ILogger logger, string requestId, Uri endpoint, int attempt, int matchedTokens, int matchedBlocks, int prefixBlocks, double score, double load, int candidates);

    /// <summary>
    /// Strict tools under <c>tool_choice: auto</c> are held to their schemas once the model starts a call
    /// (a structural tag), on a backend that takes one; elsewhere a clear 400, never an unconstrained call.
    /// </summary>
    private OutputGuide StrictToolsUnderAuto(CatalogModel model, ToolCalling tools, Caller caller)
    {
        if (model.Contract.SupportsStructuralTags)
        {
            return ToolCallTags.Guide(model.Options.ToolCallParser, tools.Tools);
        }
        var strict = tools.Tools.Select((t, i) => (t, i)).First(p => p.t.Strict);
        var param = $"tools[{strict.i}].function.strict";
        var supported = string.Join(", ", catalog.Models.Where(m => m.Contract.SupportsStructuralTags && caller.MayUse(m.Id)).Select(m => $"'{m.Id}'"));
        var why = model.Contract.SupportsGuidedDecoding
            ? $"whose guided decoding (guided_decoding_guide_type json, json_schema, regex or ebnf_grammar) has no structural tag, so a strict tool cannot be held to its schema when tool_choice is 'auto' (the model may also answer in text)"
            : "which has no constrained (guided) decoding, so a strict tool cannot be held to its schema";
        throw new GatewayException(GatewayError.Unsupported,
            $"The model `{model.Id}` runs on Triton's {model.Contract.Name} backend, {why}. The function '{strict.t.Name}' has strict: true. "
            + (model.Contract.SupportsGuidedDecoding ? "Use tool_choice 'required' or name the function (both constrained on this model), or set strict to false. " : "Set strict to false. ")
            + (supported.Length > 0 ? $"Models that hold strict tools under 'auto': {supported}." : "No model of this gateway holds strict tools under 'auto' (models on the vllm backend do)."),
            param, "unsupported_parameter");
    }

    private void RecordRefusal(Caller caller, string model, string operation, string reason, long started)
    {
        var now = time.GetUtcNow();
        ledger.Record(new UsageRecord
        {
            RequestId = (operation == "chat" ? "chatcmpl-" : "cmpl-") + Guid.CreateVersion7(now).ToString("N"),
            KeyId = caller.LedgerKeyId,
            KeyName = caller.LedgerKeyName,
            Tenant = caller.Tenant,
            Model = model,
            Operation = operation,
            Gateway = UsageRecord.ThisGateway,
            Status = UsageStatus.Refused,
            Reason = reason,
            DurationMs = time.GetElapsedTime(started).TotalMilliseconds,
            StartedAtMs = now.ToUnixTimeMilliseconds(),
        });
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {RequestId}: Triton attempt {Attempt} at {Endpoint} failed ({Failure}): {Reason}")]
    private static partial void LogAttemptFailed(ILogger logger, string requestId, Uri endpoint, int attempt, TritonFailure failure, string reason);
}

/// <summary>The per-request facts the stream carries to its end.</summary>
internal sealed record GenerationContext(
    string Id,
    CatalogModel Model,
    Caller Caller,
    string Operation,
    int PromptTokens,
    int MaxTokens,
    IReadOnlyList<string> Stops,
    long StartedTimestamp,
    QuotaReservation Reservation,
    Activity? Activity);
