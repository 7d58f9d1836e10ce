namespace TritonEmulator.Scheduling;

/// <summary>What went wrong, in protocol-neutral terms; the protocols map it to gRPC / HTTP status.</summary>
internal enum InferenceErrorCode
{
    InvalidArgument,
    NotFound,
    Unavailable,
    Unsupported,
    Cancelled,
    Internal,
}

/// <summary>Why a request failed, as Triton's <c>nv_inference_request_failure{reason}</c> label says.</summary>
internal enum FailureReason
{
    Rejected,
    Canceled,
    Backend,
    Other,
}

/// <summary>A request failure with a Triton-worded message.</summary>
internal sealed class InferenceException(InferenceErrorCode code, string message, FailureReason reason = FailureReason.Other)
    : Exception(message)
{
    public InferenceErrorCode Code { get; } = code;

    public FailureReason Reason { get; } = reason;
}
