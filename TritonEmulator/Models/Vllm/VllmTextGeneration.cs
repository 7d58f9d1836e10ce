using System.Text;
using System.Text.Json;
using Gateway.Grpc.Tensors;
using Triton.Inference;

namespace TritonEmulator.Models.Vllm;

/// <summary>
/// The generate extension over the vLLM contract: <c>stream</c> and <c>exclude_input_in_output</c>
/// become their input tensors (stream defaults to true, so both endpoints return the completion
/// only; <c>"stream": false</c> gives vLLM's single response with the prompt in front); every
/// other parameter except <c>priority</c> / <c>timeout</c> goes into the <c>sampling_parameters</c> JSON.
/// </summary>
internal sealed class VllmTextGeneration : ITextGeneration
{
    public (ModelInferRequest Request, ITextGenerationReader Reader) Create(GenerateInput input)
    {
        var request = new ModelInferRequest { Id = input.Id };
        AddBytes(request, "text_input", input.TextInput);
        var stream = true;
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (var (key, value) in input.Parameters)
            {
                switch (key)
                {
                    case "stream":
                        stream = Bool(key, value);
                        break;
                    case "exclude_input_in_output":
                        AddBool(request, key, Bool(key, value));
                        break;
                    case "priority" or "timeout":
                        if (value.TryGetInt64(out var number))
                        {
                            request.Parameters[key] = new InferParameter { Int64Param = number };
                        }
                        break;
                    default:
                        writer.WritePropertyName(key);
                        value.WriteTo(writer);
                        break;
                }
            }
            writer.WriteEndObject();
        }
        AddBool(request, "stream", stream);
        AddBytes(request, "sampling_parameters", Encoding.UTF8.GetString(buffer.ToArray()));
        AddBool(request, "return_num_output_tokens", true);
        return (request, new Reader());
    }

    private static bool Bool(string key, JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw RequestValidator.Invalid($"'{key}' must be a boolean"),
    };

    private static void AddBytes(ModelInferRequest request, string name, string value)
    {
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = TensorDataTypes.Bytes, Shape = { 1 } });
        request.RawInputContents.Add(TensorCodec.EncodeStrings(value));
    }

    private static void AddBool(ModelInferRequest request, string name, bool value)
    {
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = TensorDataTypes.Bool, Shape = { 1 } });
        request.RawInputContents.Add(TensorCodec.EncodeBool([value]));
    }

    /// <summary>The engine sends whole characters in <c>text_output</c>, so each response's text is the delta.</summary>
    private sealed class Reader : ITextGenerationReader
    {
        public int GeneratedTokens { get; private set; }

        public string Read(ModelInferResponse response)
        {
            var text = "";
            for (var i = 0; i < response.Outputs.Count; i++)
            {
                var raw = response.RawOutputContents[i];
                switch (response.Outputs[i].Name)
                {
                    case "text_output":
                        text = string.Concat(TensorCodec.DecodeStrings(raw.Span));
                        break;
                    case "num_output_tokens":
                        GeneratedTokens += (int)TensorCodec.ReadUInt32(raw.Span, 0);
                        break;
                }
            }
            return text;
        }

        public string Flush() => "";
    }
}
