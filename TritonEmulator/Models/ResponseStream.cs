using System.Threading.Channels;
using Google.Protobuf;
using Triton.Inference;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Models;

/// <summary>
/// The responses of one request on their way to a protocol: every response carries
/// <c>triton_final_response</c>; an empty final response is sent only when the request asked for
/// it with <c>triton_enable_empty_final_response</c>.
/// </summary>
internal sealed class ResponseStream
{
    public const string FinalResponseParameter = "triton_final_response";
    public const string EnableEmptyFinalParameter = "triton_enable_empty_final_response";

    private readonly Channel<ModelInferResponse> _channel =
        Channel.CreateUnbounded<ModelInferResponse>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
    private readonly ModelInferRequest _request;
    private readonly string _modelName;
    private readonly string _modelVersion;

    public ResponseStream(ModelInferRequest request, string modelName, string modelVersion)
    {
        _request = request;
        _modelName = modelName;
        _modelVersion = modelVersion;
        EmptyFinalEnabled = request.Parameters.TryGetValue(EnableEmptyFinalParameter, out var p)
            && p.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.BoolParam && p.BoolParam;
    }

    public bool EmptyFinalEnabled { get; }

    public int Written { get; private set; }

    public ChannelReader<ModelInferResponse> Reader => _channel.Reader;

    public ModelInferResponse NewResponse() => new()
    {
        ModelName = _modelName,
        ModelVersion = _modelVersion,
        Id = _request.Id,
    };

    // Shared by every response (messages are never mutated once written): one object less per token.
    private static readonly InferParameter Final = new() { BoolParam = true };
    private static readonly InferParameter NotFinal = new() { BoolParam = false };

    public void Write(ModelInferResponse response, bool final)
    {
        response.Parameters[FinalResponseParameter] = final ? Final : NotFinal;
        Written++;
        _channel.Writer.TryWrite(response);
        if (final)
        {
            _channel.Writer.TryComplete();
        }
    }

    /// <summary>Ends a decoupled request: the last data response, then the empty final one if asked for.</summary>
    public void WriteLast(ModelInferResponse response)
    {
        if (EmptyFinalEnabled)
        {
            Write(response, final: false);
            Write(NewResponse(), final: true);
        }
        else
        {
            Write(response, final: true);
        }
    }

    public void Fail(InferenceException error) => _channel.Writer.TryComplete(error);

    public static void AddOutput(ModelInferResponse response, string name, string datatype, ByteString raw, params long[] shape)
    {
        var output = new ModelInferResponse.Types.InferOutputTensor { Name = name, Datatype = datatype };
        output.Shape.AddRange(shape);
        response.Outputs.Add(output);
        response.RawOutputContents.Add(raw);
    }
}
