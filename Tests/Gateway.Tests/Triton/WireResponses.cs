using Gateway.Triton.Wire;
using Google.Protobuf;
using Triton.Inference;

namespace Gateway.Tests.Triton;

/// <summary>A response built with the generated types, serialized and read back the way the gateway reads it off the wire.</summary>
internal static class WireResponses
{
    public static TritonResponse ToWire(this ModelInferResponse response) =>
        TritonResponse.Read(new ModelStreamInferResponse { InferResponse = response }.ToByteArray());
}
