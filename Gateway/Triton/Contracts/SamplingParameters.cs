namespace Gateway.Triton.Contracts;

/// <summary>Sampling as the client asked; null = the default documented in the contract.</summary>
public sealed record SamplingParameters
{
    public double? Temperature { get; init; }
    public double? TopP { get; init; }
    public int? TopK { get; init; }
    public long? Seed { get; init; }
    public double? PresencePenalty { get; init; }
    public double? FrequencyPenalty { get; init; }
}
