using System.Text;
using System.Text.Json;
using Triton.Inference;
using TritonEmulator.Models;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Protocols.Http;

/// <summary>
/// Triton's generate extension: <c>/generate</c> returns one JSON, <c>/generate_stream</c> one SSE
/// <c>data: {json}</c> event per response, flushed at once. Errors before the first event are JSON
/// with a 4xx status; later ones are an <c>{"error": …}</c> event. A model with its own text contract
/// (FasterTransformer, vLLM) maps the prompt through it; any other (the TensorRT-LLM ensemble) gets
/// Triton's generic mapping of JSON keys to input tensors and output tensors to JSON keys (<see cref="GenerateTensors"/>).
/// </summary>
internal static class GenerateApi
{
    public static async Task GenerateAsync(InferenceServer server, string modelName, string version, HttpContext context)
    {
        var cancellationToken = context.RequestAborted;
        (ServedModel Model, GenerateInput Input, ITextGeneration Generation) call;
        try
        {
            var (model, body) = await ReadAsync(server, modelName, version, context.Request);
            if (model.Backend?.TextGeneration is null)
            {
                await GenerateTensorsAsync(server, model, GenerateTensors.CreateRequest(model, modelName, version, body), context);
                return;
            }
            call = Prepare(model, body);
        }
        catch (InferenceException exception)
        {
            await WriteErrorAsync(context, exception);
            return;
        }
        var (request, reader) = call.Generation.Create(call.Input);
        request.ModelName = modelName;
        request.ModelVersion = version;
        var text = new StringBuilder();
        ModelInferResponse? last = null;
        try
        {
            await foreach (var response in server.InferAsync(call.Model, request, cancellationToken))
            {
                text.Append(reader.Read(response));
                last = response;
            }
        }
        catch (InferenceException exception)
        {
            await WriteErrorAsync(context, exception);
            return;
        }
        text.Append(reader.Flush());
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(Event(call.Model, call.Input.Id, text.ToString(), reader.GeneratedTokens, final: true), cancellationToken);
        _ = last;
    }

    public static async Task GenerateStreamAsync(InferenceServer server, string modelName, string version, HttpContext context)
    {
        var cancellationToken = context.RequestAborted;
        (ServedModel Model, GenerateInput Input, ITextGeneration Generation) call;
        IAsyncEnumerator<ModelInferResponse> responses;
        ITextGenerationReader reader;
        bool hasFirst;
        try
        {
            var (model, body) = await ReadAsync(server, modelName, version, context.Request);
            if (model.Backend?.TextGeneration is null)
            {
                await GenerateTensorsStreamAsync(server, model, GenerateTensors.CreateRequest(model, modelName, version, body), context);
                return;
            }
            call = Prepare(model, body);
            var created = call.Generation.Create(call.Input);
            created.Request.ModelName = modelName;
            created.Request.ModelVersion = version;
            reader = created.Reader;
            responses = server.InferAsync(call.Model, created.Request, cancellationToken).GetAsyncEnumerator(cancellationToken);
            // Validation and queueing happen on the first move: their errors still get a JSON status.
            hasFirst = await responses.MoveNextAsync();
        }
        catch (InferenceException exception)
        {
            await WriteErrorAsync(context, exception);
            return;
        }
        await using var _ = responses;
        context.Response.ContentType = "text/event-stream; charset=utf-8";
        context.Response.Headers.CacheControl = "no-cache";
        await context.Response.StartAsync(cancellationToken);
        try
        {
            for (var more = hasFirst; more; more = await responses.MoveNextAsync())
            {
                var response = responses.Current;
                var final = response.Parameters.TryGetValue(ResponseStream.FinalResponseParameter, out var f) && f.BoolParam;
                var delta = reader.Read(response);
                if (final)
                {
                    delta += reader.Flush();
                }
                await WriteEventAsync(context, Event(call.Model, call.Input.Id, delta, reader.GeneratedTokens, final), cancellationToken);
            }
        }
        catch (InferenceException exception)
        {
            await WriteEventAsync(context, ErrorJson(exception.Message), cancellationToken);
        }
    }

    private static async Task<(ServedModel Model, JsonElement Body)> ReadAsync(InferenceServer server, string modelName, string version, HttpRequest request)
    {
        var model = server.GetReadyModel(modelName, version);
        JsonElement body;
        try
        {
            using var document = await JsonDocument.ParseAsync(request.Body, cancellationToken: request.HttpContext.RequestAborted);
            body = document.RootElement.Clone();
        }
        catch (JsonException exception)
        {
            throw RequestValidator.Invalid($"failed to parse the request JSON buffer: {exception.Message}");
        }
        if (body.ValueKind != JsonValueKind.Object)
        {
            throw RequestValidator.Invalid("the request body must be a JSON object");
        }
        return (model, body);
    }

    /// <summary>
    /// <c>/generate</c> with the generic mapping: exactly one response (a flag-only final one does not
    /// count), else Triton's error object; as in Triton the status is already 200 when that is known.
    /// </summary>
    private static async Task GenerateTensorsAsync(InferenceServer server, ServedModel model, ModelInferRequest request, HttpContext context)
    {
        var cancellationToken = context.RequestAborted;
        var responses = new List<ModelInferResponse>(1);
        try
        {
            await foreach (var response in server.InferAsync(model, request, cancellationToken))
            {
                if (GenerateTensors.HasOutputs(response))
                {
                    responses.Add(response);
                }
            }
        }
        catch (InferenceException exception)
        {
            await WriteErrorAsync(context, exception);
            return;
        }
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(
            responses.Count == 1 ? GenerateTensors.ResponseJson(responses[0]) : ErrorJson(GenerateTensors.NotOneResponse), cancellationToken);
    }

    /// <summary><c>/generate_stream</c> with the generic mapping: one SSE event per response that has outputs.</summary>
    private static async Task GenerateTensorsStreamAsync(InferenceServer server, ServedModel model, ModelInferRequest request, HttpContext context)
    {
        var cancellationToken = context.RequestAborted;
        await using var responses = server.InferAsync(model, request, cancellationToken).GetAsyncEnumerator(cancellationToken);
        bool more;
        try
        {
            // Validation and queueing happen on the first move: their errors still get a JSON status.
            more = await responses.MoveNextAsync();
        }
        catch (InferenceException exception)
        {
            await WriteErrorAsync(context, exception);
            return;
        }
        context.Response.ContentType = "text/event-stream; charset=utf-8";
        context.Response.Headers.CacheControl = "no-cache";
        await context.Response.StartAsync(cancellationToken);
        try
        {
            for (; more; more = await responses.MoveNextAsync())
            {
                if (GenerateTensors.HasOutputs(responses.Current))
                {
                    await WriteEventAsync(context, GenerateTensors.ResponseJson(responses.Current), cancellationToken);
                }
            }
        }
        catch (InferenceException exception)
        {
            await WriteEventAsync(context, ErrorJson(exception.Message), cancellationToken);
        }
    }

    private static (ServedModel, GenerateInput, ITextGeneration) Prepare(ServedModel model, JsonElement body)
    {
        var generation = model.Backend!.TextGeneration!;
        var parameters = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        string? text = null;
        var id = "";
        foreach (var property in body.EnumerateObject())
        {
            switch (property.Name)
            {
                case "text_input" when property.Value.ValueKind == JsonValueKind.String:
                    text = property.Value.GetString();
                    break;
                case "text_input":
                    throw RequestValidator.Invalid("'text_input' must be a string");
                case "id":
                    id = property.Value.ToString();
                    break;
                case "parameters" when property.Value.ValueKind == JsonValueKind.Object:
                    foreach (var parameter in property.Value.EnumerateObject())
                    {
                        parameters[parameter.Name] = parameter.Value;
                    }
                    break;
                default:
                    // Other top-level properties bind like inputs of the same name.
                    parameters[property.Name] = property.Value;
                    break;
            }
        }
        if (text is null)
        {
            throw RequestValidator.Invalid("missing required input 'text_input'");
        }
        return (model, new GenerateInput(id, text, parameters), generation);
    }

    private static string Event(ServedModel model, string id, string text, int tokens, bool final)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            if (!string.IsNullOrEmpty(id))
            {
                writer.WriteString("id", id);
            }
            writer.WriteString("model_name", model.Name);
            writer.WriteString("model_version", model.Version);
            writer.WriteString("text_output", text);
            writer.WriteNumber("generated_tokens", tokens);
            writer.WriteBoolean("triton_final_response", final);
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static string ErrorJson(string message)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("error", message);
            writer.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static async Task WriteEventAsync(HttpContext context, string json, CancellationToken cancellationToken)
    {
        await context.Response.WriteAsync("data: " + json + "\n\n", cancellationToken);
        await context.Response.Body.FlushAsync(cancellationToken);
    }

    private static async Task WriteErrorAsync(HttpContext context, InferenceException exception)
    {
        context.Response.StatusCode = exception.Code.ToHttp();
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(ErrorJson(exception.Message), context.RequestAborted);
    }
}
