using Google.Protobuf;
using Grpc.Core;
using Triton.Inference;

namespace Gateway.Triton.Wire;

/// <summary>
/// <c>inference.GRPCInferenceService/ModelStreamInfer</c> with the gateway's own response marshaller:
/// requests are the generated <see cref="ModelInferRequest"/> written straight into gRPC's buffer;
/// responses are read in place into a pooled <see cref="TritonResponse"/> instead of a full
/// Google.Protobuf object graph per token. One static method (grpc-dotnet caches per-method state).
/// </summary>
internal static class TritonWire
{
    public static Method<ModelInferRequest, TritonResponse> ModelStreamInfer { get; } = new(
        MethodType.DuplexStreaming,
        "inference.GRPCInferenceService",
        "ModelStreamInfer",
        Marshallers.Create<ModelInferRequest>(
            static (request, context) =>
            {
                context.SetPayloadLength(request.CalculateSize());
                request.WriteTo(context.GetBufferWriter());
                context.Complete();
            },
            static context => ModelInferRequest.Parser.ParseFrom(context.PayloadAsReadOnlySequence())),
        Marshallers.Create<TritonResponse>(
            static (_, _) => throw new NotSupportedException("The gateway never sends a ModelStreamInferResponse."),
            static context => TritonResponse.Read(context.PayloadAsReadOnlySequence())));
}
