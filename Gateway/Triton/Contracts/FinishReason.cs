namespace Gateway.Triton.Contracts;

/// <summary>Why a generation ended (OpenAI's values).</summary>
public enum FinishReason
{
    Stop,
    Length,
}
