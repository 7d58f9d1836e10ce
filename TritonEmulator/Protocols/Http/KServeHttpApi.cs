using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Grpc.Tensors;
using Google.Protobuf;
using Triton.Inference;
using TritonEmulator.Models;
using TritonEmulator.Protocols.Grpc;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Protocols.Http;

/// <summary>The KServe v2 REST API with Triton's extensions (config, stats, repository index).</summary>
internal static class KServeHttpApi
{
    private static readonly JsonFormatter ProtoJson = new(JsonFormatter.Settings.Default.WithPreserveProtoFieldNames(true));

    public static IEndpointConventionBuilder MapKServeHttpApi(this IEndpointRouteBuilder endpoints)
    {
        var v2 = endpoints.MapGroup("/v2");
        v2.MapGet("/health/live", (InferenceServer server) => server.IsLive ? Results.Ok() : Results.StatusCode(StatusCodes.Status503ServiceUnavailable)).WithName("ServerLive");
        v2.MapGet("/health/ready", (InferenceServer server) => server.IsReady ? Results.Ok() : Results.StatusCode(StatusCodes.Status503ServiceUnavailable)).WithName("ServerReady");
        v2.MapGet("", () => Json(new ServerMetadataResponse
        {
            Name = InferenceServer.ServerName,
            Version = InferenceServer.ServerVersion,
            Extensions = { InferenceServer.Extensions },
        })).WithName("ServerMetadata");

        foreach (var prefix in new[] { "/models/{model}", "/models/{model}/versions/{version}" })
        {
            v2.MapGet(prefix + "/ready", (InferenceServer server, string model, string? version) =>
                server.Find(model) is { IsReady: true } m && m.HasVersion(version ?? "") ? Results.Ok() : Results.BadRequest());
            v2.MapGet(prefix, (InferenceServer server, string model, string? version) =>
                Run(() => Json(ModelDescriptions.Metadata(server.GetReadyModel(model, version ?? "")))));
            v2.MapGet(prefix + "/config", (InferenceServer server, string model, string? version) =>
                Run(() => Json(server.GetReadyModel(model, version ?? "").Config!)));
            v2.MapGet(prefix + "/stats", (InferenceServer server, string model, string? version) =>
                Run(() => Json(ModelDescriptions.Statistics(server, model, version ?? ""))));
            v2.MapPost(prefix + "/infer", (InferenceServer server, string model, string? version, HttpRequest request) =>
                InferAsync(server, model, version ?? "", request));
            v2.MapPost(prefix + "/generate", (InferenceServer server, string model, string? version, HttpContext context) =>
                GenerateApi.GenerateAsync(server, model, version ?? "", context));
            v2.MapPost(prefix + "/generate_stream", (InferenceServer server, string model, string? version, HttpContext context) =>
                GenerateApi.GenerateStreamAsync(server, model, version ?? "", context));
        }
        v2.MapGet("/models/stats", (InferenceServer server) => Json(ModelDescriptions.Statistics(server, "", "")));
        v2.MapPost("/repository/index", async (InferenceServer server, HttpRequest request) =>
        {
            var readyOnly = false;
            if (request.ContentLength is > 0 || request.Headers.TransferEncoding.Count > 0)
            {
                var body = await JsonNode.ParseAsync(request.Body, cancellationToken: request.HttpContext.RequestAborted);
                readyOnly = body?["ready"]?.GetValue<bool>() ?? false;
            }
            var index = new JsonArray();
            foreach (var model in server.Models)
            {
                if (readyOnly && !model.IsReady)
                {
                    continue;
                }
                var entry = new JsonObject { ["name"] = model.Name };
                if (model.IsReady)
                {
                    entry["version"] = model.Version;
                }
                entry["state"] = model.IsReady ? "READY" : model.State;
                if (!string.IsNullOrEmpty(model.Reason))
                {
                    entry["reason"] = model.Reason;
                }
                index.Add(entry);
            }
            return Results.Text(index.ToJsonString(), "application/json");
        }).WithName("RepositoryIndex");
        return v2;
    }

    public static IResult Json(IMessage message) => Results.Text(ProtoJson.Format(message), "application/json");

    public static IResult Error(int status, string message) =>
        Results.Text(new JsonObject { ["error"] = message }.ToJsonString(), "application/json", Encoding.UTF8, status);

    private static IResult Run(Func<IResult> action)
    {
        try
        {
            return action();
        }
        catch (InferenceException exception)
        {
            return Error(exception.Code.ToHttp(), exception.Message);
        }
    }

    private static async Task<IResult> InferAsync(InferenceServer server, string modelName, string version, HttpRequest http)
    {
        try
        {
            var model = server.GetReadyModel(modelName, version);
            if (model.Decoupled)
            {
                throw new InferenceException(InferenceErrorCode.Unsupported,
                    "HTTP end point doesn't support models with decoupled transaction policy");
            }
            JsonNode? body;
            try
            {
                body = await JsonNode.ParseAsync(http.Body, cancellationToken: http.HttpContext.RequestAborted);
            }
            catch (JsonException exception)
            {
                throw RequestValidator.Invalid($"failed to parse the request JSON buffer: {exception.Message}");
            }
            var request = ToInferRequest(body as JsonObject ?? throw RequestValidator.Invalid("the request body must be a JSON object"), modelName, version);
            ModelInferResponse? last = null;
            await foreach (var response in server.InferAsync(model, request, http.HttpContext.RequestAborted))
            {
                last = response;
            }
            return Results.Text(ToJson(last!).ToJsonString(), "application/json");
        }
        catch (InferenceException exception)
        {
            return Error(exception.Code.ToHttp(), exception.Message);
        }
    }

    private static ModelInferRequest ToInferRequest(JsonObject body, string model, string version)
    {
        var request = new ModelInferRequest { ModelName = model, ModelVersion = version, Id = body["id"]?.GetValue<string>() ?? "" };
        if (body["parameters"] is JsonObject parameters)
        {
            foreach (var (key, value) in parameters)
            {
                request.Parameters[key] = ToParameter(value);
            }
        }
        foreach (var node in body["inputs"]?.AsArray() ?? [])
        {
            var input = node!.AsObject();
            var tensor = new ModelInferRequest.Types.InferInputTensor
            {
                Name = input["name"]?.GetValue<string>() ?? throw RequestValidator.Invalid("an input has no 'name'"),
                Datatype = input["datatype"]?.GetValue<string>() ?? throw RequestValidator.Invalid("an input has no 'datatype'"),
            };
            foreach (var dim in input["shape"]?.AsArray() ?? [])
            {
                tensor.Shape.Add(dim!.GetValue<long>());
            }
            var values = new List<JsonNode>();
            Flatten(input["data"], values);
            tensor.Contents = ToContents(tensor.Datatype, values, tensor.Name);
            request.Inputs.Add(tensor);
        }
        foreach (var node in body["outputs"]?.AsArray() ?? [])
        {
            request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = node!["name"]!.GetValue<string>() });
        }
        return request;
    }

    internal static InferParameter ToParameter(JsonNode? value) => value?.GetValueKind() switch
    {
        JsonValueKind.True or JsonValueKind.False => new InferParameter { BoolParam = value.GetValue<bool>() },
        JsonValueKind.Number when value.AsValue().TryGetValue<long>(out var l) => new InferParameter { Int64Param = l },
        JsonValueKind.Number => new InferParameter { DoubleParam = value.GetValue<double>() },
        _ => new InferParameter { StringParam = value?.ToString() ?? "" },
    };

    internal static void Flatten(JsonNode? node, List<JsonNode> values)
    {
        if (node is JsonArray array)
        {
            foreach (var item in array)
            {
                Flatten(item, values);
            }
        }
        else if (node is not null)
        {
            values.Add(node);
        }
    }

    internal static InferTensorContents ToContents(string datatype, List<JsonNode> values, string name)
    {
        var contents = new InferTensorContents();
        try
        {
            foreach (var value in values)
            {
                switch (datatype)
                {
                    case TensorDataTypes.Bool: contents.BoolContents.Add(value.GetValue<bool>()); break;
                    case TensorDataTypes.UInt8 or TensorDataTypes.UInt16 or TensorDataTypes.UInt32: contents.UintContents.Add(value.GetValue<uint>()); break;
                    case TensorDataTypes.Int8 or TensorDataTypes.Int16 or TensorDataTypes.Int32: contents.IntContents.Add(value.GetValue<int>()); break;
                    case TensorDataTypes.UInt64: contents.Uint64Contents.Add(value.GetValue<ulong>()); break;
                    case TensorDataTypes.Int64: contents.Int64Contents.Add(value.GetValue<long>()); break;
                    case TensorDataTypes.Fp32: contents.Fp32Contents.Add(value.GetValue<float>()); break;
                    case TensorDataTypes.Fp64: contents.Fp64Contents.Add(value.GetValue<double>()); break;
                    case TensorDataTypes.Bytes: contents.BytesContents.Add(ByteString.CopyFromUtf8(value.GetValue<string>())); break;
                    default: throw RequestValidator.Invalid($"datatype {datatype} of input '{name}' is not supported in JSON");
                }
            }
        }
        catch (Exception exception) when (exception is FormatException or InvalidOperationException)
        {
            throw RequestValidator.Invalid($"unable to parse 'data' of input '{name}' as {datatype}: {exception.Message}");
        }
        return contents;
    }

    /// <summary>A raw output tensor's elements as JSON values (the types the emulator's models produce).</summary>
    internal static JsonArray Data(string datatype, ReadOnlySpan<byte> raw)
    {
        var data = new JsonArray();
        switch (datatype)
        {
            case TensorDataTypes.UInt32: foreach (var v in TensorCodec.DecodeUInt32(raw)) { data.Add(v); } break;
            case TensorDataTypes.Int32: foreach (var v in TensorCodec.DecodeInt32(raw)) { data.Add(v); } break;
            case TensorDataTypes.UInt64: foreach (var v in TensorCodec.DecodeUInt64(raw)) { data.Add(v); } break;
            case TensorDataTypes.Int64: foreach (var v in TensorCodec.DecodeInt64(raw)) { data.Add(v); } break;
            case TensorDataTypes.Fp32: foreach (var v in TensorCodec.DecodeFloat32(raw)) { data.Add(v); } break;
            case TensorDataTypes.Bool: foreach (var v in TensorCodec.DecodeBool(raw)) { data.Add(v); } break;
            case TensorDataTypes.Bytes: foreach (var v in TensorCodec.DecodeStrings(raw)) { data.Add(v); } break;
        }
        return data;
    }

    private static JsonObject ToJson(ModelInferResponse response)
    {
        var outputs = new JsonArray();
        for (var i = 0; i < response.Outputs.Count; i++)
        {
            var output = response.Outputs[i];
            var data = Data(output.Datatype, response.RawOutputContents[i].Span);
            var shape = new JsonArray();
            foreach (var dim in output.Shape)
            {
                shape.Add(dim);
            }
            outputs.Add(new JsonObject { ["name"] = output.Name, ["datatype"] = output.Datatype, ["shape"] = shape, ["data"] = data });
        }
        var json = new JsonObject { ["model_name"] = response.ModelName, ["model_version"] = response.ModelVersion };
        if (!string.IsNullOrEmpty(response.Id))
        {
            json["id"] = response.Id;
        }
        json["outputs"] = outputs;
        return json;
    }
}
