using Grpc.Core;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Protocols;

/// <summary>Maps engine errors to the status codes Triton's frontends use.</summary>
internal static class InferenceErrors
{
    public static StatusCode ToGrpc(this InferenceErrorCode code) => code switch
    {
        InferenceErrorCode.InvalidArgument => StatusCode.InvalidArgument,
        InferenceErrorCode.NotFound => StatusCode.NotFound,
        InferenceErrorCode.Unavailable => StatusCode.Unavailable,
        InferenceErrorCode.Unsupported => StatusCode.Unimplemented,
        InferenceErrorCode.Cancelled => StatusCode.Cancelled,
        _ => StatusCode.Internal,
    };

    /// <summary>Triton's HTTP frontend answers 400 for most errors; 404 / 503 where they fit.</summary>
    public static int ToHttp(this InferenceErrorCode code) => code switch
    {
        InferenceErrorCode.NotFound => StatusCodes.Status400BadRequest,
        InferenceErrorCode.Unavailable => StatusCodes.Status503ServiceUnavailable,
        InferenceErrorCode.Internal => StatusCodes.Status500InternalServerError,
        _ => StatusCodes.Status400BadRequest,
    };

    public static RpcException ToRpc(this InferenceException exception) => new(new Status(exception.Code.ToGrpc(), exception.Message));
}
