using Grpc.Core;
using Triton.Inference;

namespace Gateway.Triton.Wire;

/// <summary>
/// <c>inference.GRPCInferenceService/ModelStreamInfer</c> with the gateway's own response marshaller:
/// requests are <see cref="TritonRequest"/>s written by hand straight into gRPC's buffer;
/// responses are read in place into a pooled <see cref="TritonResponse"/> instead of a full
/// Google.Protobuf object graph per token. One static method (grpc-dotnet caches per-method state).
/// </summary>
internal static class TritonWire
{
    public static Method<TritonRequest, TritonResponse> ModelStreamInfer { get; } = new(
        MethodType.DuplexStreaming,
        "inference.GRPCInferenceService",
        "ModelStreamInfer",
        Marshallers.Create<TritonRequest>(
            static (request, context) =>
            {
                var size = request.CalculateSize();
                context.SetPayloadLength(size);
                var writer = context.GetBufferWriter();
                request.WriteTo(writer.GetSpan(size)[..size]);
                writer.Advance(size);
                context.Complete();
            },
            static _ => throw new NotSupportedException("The gateway never receives a ModelInferRequest.")),
        Marshallers.Create<TritonResponse>(
            static (_, _) => throw new NotSupportedException("The gateway never sends a ModelStreamInferResponse."),
            static context => TritonResponse.Read(context.PayloadAsReadOnlySequence())));
}
