using System.Text.Json;
using System.Text.Json.Nodes;
using Triton.Inference;
using TritonEmulator.Models;
using TritonEmulator.Protocols.Grpc;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Protocols.Http;

/// <summary>
/// The generate extension's own mapping, as Triton's HTTP frontend does it for any model (used here for
/// models without a text contract of their own: the TensorRT-LLM <c>ensemble</c>, <c>tensorrt_llm</c>,
/// the Python models). Request: every top-level key, and every key of <c>"parameters"</c>, that names an
/// input of the model becomes that input tensor (a JSON value or 1-D array; shape from the model's
/// metadata: fixed dims divide the element count, the innermost -1 takes the rest, other -1 are 1); any
/// other key becomes a request parameter. Response: one JSON object per model response holding <c>id</c>
/// (when set), <c>model_name</c>, <c>model_version</c> and every output tensor by name (one element as
/// a plain value, more as an array), keys in name order.
/// </summary>
internal static class GenerateTensors
{
    /// <summary>Triton's error when <c>/generate</c> gets other than one response.</summary>
    public const string NotOneResponse =
        "generate expects model to produce exactly 1 response, use generate stream for model that generates various number of responses";

    public static ModelInferRequest CreateRequest(ServedModel model, string modelName, string version, JsonElement body)
    {
        var metadata = ModelDescriptions.Metadata(model);
        var inputs = metadata.Inputs.ToDictionary(static i => i.Name, StringComparer.Ordinal);
        var request = new ModelInferRequest { ModelName = modelName, ModelVersion = version };
        foreach (var property in body.EnumerateObject())
        {
            if (property.Name == "parameters" && property.Value.ValueKind == JsonValueKind.Object && !inputs.ContainsKey("parameters"))
            {
                foreach (var parameter in property.Value.EnumerateObject())
                {
                    Map(request, inputs, parameter.Name, parameter.Value);
                }
            }
            else if (property.Name == "id" && !inputs.ContainsKey("id"))
            {
                request.Id = property.Value.ToString();
            }
            else
            {
                Map(request, inputs, property.Name, property.Value);
            }
        }
        return request;
    }

    private static void Map(ModelInferRequest request, Dictionary<string, ModelMetadataResponse.Types.TensorMetadata> inputs, string name, JsonElement value)
    {
        var node = JsonNode.Parse(value.GetRawText());
        if (!inputs.TryGetValue(name, out var input))
        {
            if (value.ValueKind is JsonValueKind.Object or JsonValueKind.Array or JsonValueKind.Null)
            {
                throw RequestValidator.Invalid($"parameter '{name}' must be a string, a number or a boolean");
            }
            request.Parameters[name] = KServeHttpApi.ToParameter(node);
            return;
        }
        var values = new List<JsonNode>();
        KServeHttpApi.Flatten(node, values);
        var tensor = new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = input.Datatype };
        tensor.Shape.AddRange(Shape(name, input.Shape, values.Count));
        tensor.Contents = KServeHttpApi.ToContents(input.Datatype, values, name);
        request.Inputs.Add(tensor);
    }

    /// <summary>Triton's two passes: fixed dims divide the count, the innermost -1 takes what is left, other -1 become 1.</summary>
    private static long[] Shape(string name, IReadOnlyList<long> dims, long count)
    {
        var shape = dims.ToArray();
        var remaining = count;
        for (var i = shape.Length - 1; i >= 0; i--)
        {
            if (shape[i] != -1)
            {
                if (shape[i] == 0 || remaining % shape[i] != 0)
                {
                    throw RequestValidator.Invalid($"The schema can not convert input '{name}' to tensor with proper shape");
                }
                remaining /= shape[i];
            }
        }
        for (var i = shape.Length - 1; i >= 0; i--)
        {
            if (shape[i] == -1)
            {
                shape[i] = remaining;
                remaining = 1;
            }
        }
        return remaining == 1 ? shape : throw RequestValidator.Invalid($"The schema can not convert input '{name}' to tensor with proper shape");
    }

    /// <summary>Whether a response carries anything to send (a flag-only final response of a decoupled model does not).</summary>
    public static bool HasOutputs(ModelInferResponse response) => response.Outputs.Count > 0;

    public static string ResponseJson(ModelInferResponse response)
    {
        var entries = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal)
        {
            ["model_name"] = response.ModelName,
            ["model_version"] = response.ModelVersion,
        };
        if (!string.IsNullOrEmpty(response.Id))
        {
            entries["id"] = response.Id;
        }
        foreach (var (key, parameter) in response.Parameters)
        {
            // triton_final_response is the gRPC stream's flag, not a response parameter of the model.
            if (key == ResponseStream.FinalResponseParameter)
            {
                continue;
            }
            entries[key] = parameter.ParameterChoiceCase switch
            {
                InferParameter.ParameterChoiceOneofCase.BoolParam => parameter.BoolParam,
                InferParameter.ParameterChoiceOneofCase.Int64Param => parameter.Int64Param,
                InferParameter.ParameterChoiceOneofCase.Uint64Param => parameter.Uint64Param,
                InferParameter.ParameterChoiceOneofCase.DoubleParam => parameter.DoubleParam,
                _ => parameter.StringParam,
            };
        }
        for (var i = 0; i < response.Outputs.Count; i++)
        {
            var output = response.Outputs[i];
            var data = KServeHttpApi.Data(output.Datatype, response.RawOutputContents[i].Span);
            entries[output.Name] = data.Count == 1 ? data[0]!.DeepClone() : data;
        }
        var json = new JsonObject();
        foreach (var (key, value) in entries)
        {
            json[key] = value;
        }
        return json.ToJsonString();
    }
}
