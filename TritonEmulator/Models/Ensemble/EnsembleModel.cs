using System.Runtime.CompilerServices;
using Gateway.Grpc.Tensors;
using Google.Protobuf;
using Triton.Inference;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models.Ensemble;

/// <summary>
/// Triton's <c>ensemble</c> platform: <c>ensemble_scheduling</c> steps, each a composing model whose
/// inputs come from the ensemble's tensors through <c>input_map</c> (composing input → ensemble tensor)
/// and whose outputs become ensemble tensors through <c>output_map</c>. Steps run in dependency order,
/// each as an ordinary request of its model (its own queue, batching and statistics). A decoupled step
/// (TensorRT-LLM) may answer many times; every one of its responses flows on through the steps after it,
/// and each such wave becomes one ensemble response with the ensemble outputs it produced, final when
/// every step's response in it was final. An optional ensemble input that the request leaves out is
/// simply not passed on. Errors of a composing model come back as <c>in ensemble 'name', message</c>.
/// </summary>
internal sealed class EnsembleModel : IModelBackend
{
    public const string PlatformName = "ensemble";

    private readonly string _name;
    private readonly IReadOnlyList<Step> _steps;
    private readonly ModelConfig _config;

    private EnsembleModel(string name, ModelConfig config, IReadOnlyList<Step> steps)
    {
        _name = name;
        _config = config;
        _steps = steps;
    }

    public ITextGeneration? TextGeneration => null;

    public IScheduledWork CreateWork(ValidatedRequest request, ResponseStream responses, bool decoupled) =>
        throw new InvalidOperationException("an ensemble has no work of its own; run it with RunAsync");

    /// <summary>The composing models this ensemble calls.</summary>
    public IEnumerable<string> ComposingModels => _steps.Select(static s => s.Model.Name);

    /// <summary>
    /// Checks the step graph against the loaded models, as Triton does at load: every step's model is
    /// loaded, every mapped name is an input / output of it, every step input is produced by the
    /// ensemble's inputs or an earlier step, and every ensemble output by some step.
    /// </summary>
    public static EnsembleModel Load(string name, ModelConfig config, Func<string, ServedModel?> find)
    {
        if (config.EnsembleScheduling is not { Step.Count: > 0 } scheduling)
        {
            throw new ModelLoadException($"ensemble {name} must specify ensemble_scheduling with at least one step");
        }
        var available = new HashSet<string>(config.Input.Select(static i => i.Name), StringComparer.Ordinal);
        var pending = new List<ModelEnsembling.Types.Step>(scheduling.Step);
        var ordered = new List<Step>();
        while (pending.Count > 0)
        {
            var ready = pending.FirstOrDefault(step => step.InputMap.Values.All(tensor => available.Contains(tensor) || IsOptionalEnsembleInput(config, tensor)));
            if (ready is null)
            {
                var missing = pending[0].InputMap.Values.First(tensor => !available.Contains(tensor));
                throw new ModelLoadException($"in ensemble {name}, no step produces tensor '{missing}' that step '{pending[0].ModelName}' consumes");
            }
            pending.Remove(ready);
            var model = find(ready.ModelName);
            if (model is null || !model.IsReady || model.Config is null)
            {
                throw new ModelLoadException($"ensemble '{name}' depends on '{ready.ModelName}' which has no loaded version. Model '{ready.ModelName}' loading failed with error: {model?.Reason ?? "not found in the model repository"}");
            }
            foreach (var (input, _) in ready.InputMap)
            {
                if (model.Config.Input.All(i => i.Name != input))
                {
                    throw new ModelLoadException($"in ensemble {name}, ensemble tensor is mapped to non-existing input '{input}' of model '{ready.ModelName}'");
                }
            }
            foreach (var (output, tensor) in ready.OutputMap)
            {
                if (model.Config.Output.All(o => o.Name != output))
                {
                    throw new ModelLoadException($"in ensemble {name}, ensemble tensor '{tensor}' is mapped from non-existing output '{output}' of model '{ready.ModelName}'");
                }
                available.Add(tensor);
            }
            ordered.Add(new Step(model, [.. ready.InputMap.Select(static p => (p.Key, p.Value))], [.. ready.OutputMap.Select(static p => (p.Key, p.Value))]));
        }
        foreach (var output in config.Output)
        {
            if (!available.Contains(output.Name))
            {
                throw new ModelLoadException($"in ensemble {name}, ensemble output '{output.Name}' is not produced by any step");
            }
        }
        return new EnsembleModel(name, config, ordered);
    }

    private static bool IsOptionalEnsembleInput(ModelConfig config, string tensor) =>
        config.Input.Any(i => i.Name == tensor && i.Optional);

    /// <summary>Runs the steps for a request validated against the ensemble's config; yields the ensemble's responses.</summary>
    public async IAsyncEnumerable<ModelInferResponse> RunAsync(InferenceServer server, ServedModel self, ValidatedRequest request,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var pool = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, tensor) in request.Inputs)
        {
            pool[name] = new Tensor(tensor.DataType.ToProtocolName(), tensor.Shape, UnsafeByteOperations.UnsafeWrap(tensor.Raw));
        }
        var emptyFinal = request.Request.Parameters.TryGetValue(ResponseStream.EnableEmptyFinalParameter, out var flag)
            && flag.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.BoolParam && flag.BoolParam;
        await foreach (var wave in RunFrom(server, 0, pool, request.Request, cancellationToken))
        {
            if (wave.Tensors is null)
            {
                yield return Response(self, request, null, final: wave.Final);
                continue;
            }
            if (wave.Final && emptyFinal)
            {
                yield return Response(self, request, wave.Tensors, final: false);
                yield return Response(self, request, null, final: true);
            }
            else
            {
                yield return Response(self, request, wave.Tensors, wave.Final);
            }
        }
    }

    private ModelInferResponse Response(ServedModel self, ValidatedRequest request, Dictionary<string, Tensor>? tensors, bool final)
    {
        var response = new ModelInferResponse { ModelName = self.Name, ModelVersion = self.Version, Id = request.Request.Id };
        if (tensors is not null)
        {
            foreach (var output in _config.Output)
            {
                if (request.WantsOutput(output.Name) && tensors.TryGetValue(output.Name, out var tensor))
                {
                    var entry = new ModelInferResponse.Types.InferOutputTensor { Name = output.Name, Datatype = tensor.Datatype };
                    entry.Shape.AddRange(tensor.Shape);
                    response.Outputs.Add(entry);
                    response.RawOutputContents.Add(tensor.Raw);
                }
            }
        }
        response.Parameters[ResponseStream.FinalResponseParameter] = new InferParameter { BoolParam = final };
        return response;
    }

    /// <summary>Step <paramref name="index"/> and everything after it, once per response of that step.</summary>
    private async IAsyncEnumerable<Wave> RunFrom(InferenceServer server, int index, Dictionary<string, Tensor> pool, ModelInferRequest outer,
        [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (index == _steps.Count)
        {
            yield return new Wave(pool, Final: true);
            yield break;
        }
        var step = _steps[index];
        var request = new ModelInferRequest { ModelName = step.Model.Name, Id = outer.Id };
        foreach (var key in (ReadOnlySpan<string>)[ResponseStream.EnableEmptyFinalParameter, "priority", "timeout"])
        {
            if (outer.Parameters.TryGetValue(key, out var parameter))
            {
                request.Parameters[key] = parameter;
            }
        }
        foreach (var (input, tensor) in step.Inputs)
        {
            if (pool.TryGetValue(tensor, out var value))
            {
                var entry = new ModelInferRequest.Types.InferInputTensor { Name = input, Datatype = value.Datatype };
                entry.Shape.AddRange(value.Shape);
                request.Inputs.Add(entry);
                request.RawInputContents.Add(value.Raw);
            }
        }
        foreach (var (output, _) in step.Outputs)
        {
            request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = output });
        }
        await using var responses = server.InferAsync(step.Model, request, cancellationToken).GetAsyncEnumerator(cancellationToken);
        while (true)
        {
            bool more;
            try
            {
                more = await responses.MoveNextAsync();
            }
            catch (InferenceException exception)
            {
                throw new InferenceException(exception.Code, $"in ensemble '{_name}', {exception.Message}", exception.Reason);
            }
            if (!more)
            {
                yield break;
            }
            var response = responses.Current;
            var final = response.Parameters.TryGetValue(ResponseStream.FinalResponseParameter, out var f) && f.BoolParam;
            if (response.Outputs.Count == 0)
            {
                // An empty (final) response of a decoupled step: nothing flows on, only the end.
                if (final)
                {
                    yield return new Wave(null, Final: true);
                }
                continue;
            }
            var next = new Dictionary<string, Tensor>(pool, StringComparer.Ordinal);
            for (var i = 0; i < response.Outputs.Count; i++)
            {
                var output = response.Outputs[i];
                foreach (var (name, tensor) in step.Outputs)
                {
                    if (name == output.Name)
                    {
                        next[tensor] = new Tensor(output.Datatype, [.. output.Shape], response.RawOutputContents[i]);
                    }
                }
            }
            await foreach (var wave in RunFrom(server, index + 1, next, outer, cancellationToken))
            {
                yield return wave with { Final = wave.Final && final };
            }
        }
    }

    private sealed record Step(ServedModel Model, IReadOnlyList<(string Input, string Tensor)> Inputs, IReadOnlyList<(string Output, string Tensor)> Outputs);

    private sealed record Tensor(string Datatype, long[] Shape, ByteString Raw);

    private sealed record Wave(Dictionary<string, Tensor>? Tensors, bool Final);
}
