using System.Net;
using Microsoft.Extensions.Options;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Hosting;

/// <summary>The <c>Emulator</c> configuration section.</summary>
public sealed class EmulatorOptions
{
    public const string SectionName = "Emulator";

    /// <summary>KServe v2 HTTP/REST (and /health, /alive). 0 = any free port.</summary>
    public int HttpPort { get; set; } = 8000;

    /// <summary>Triton gRPC, HTTP/2 without TLS (h2c). 0 = any free port.</summary>
    public int GrpcPort { get; set; } = 8001;

    /// <summary>Prometheus metrics (<c>/metrics</c>). 0 = any free port.</summary>
    public int MetricsPort { get; set; } = 8002;

    /// <summary>Address to listen on: <c>*</c> (any IPv4/IPv6, the default, so containers work) or an IP literal.</summary>
    public string ListenAddress { get; set; } = "*";

    /// <summary>The Triton model repository folder; default: the nearest <c>models</c> folder above the content root.</summary>
    public string? ModelRepository { get; set; }

    /// <summary>Optional override of every model's timing profile: <c>zero-latency</c> or <c>a100-gptj-6b</c>.</summary>
    public string? Profile { get; set; }

    internal static string ResolveRepository(EmulatorOptions options, string contentRoot)
    {
        if (!string.IsNullOrWhiteSpace(options.ModelRepository))
        {
            var configured = Path.GetFullPath(options.ModelRepository, contentRoot);
            return Directory.Exists(configured)
                ? configured
                : throw new OptionsValidationException(SectionName, typeof(EmulatorOptions),
                    [$"{SectionName}:ModelRepository: folder '{configured}' does not exist"]);
        }
        for (var directory = new DirectoryInfo(contentRoot); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "models");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }
        throw new OptionsValidationException(SectionName, typeof(EmulatorOptions),
            [$"{SectionName}:ModelRepository is not set and no 'models' folder was found above '{contentRoot}'"]);
    }

    internal IPAddress ParseListenAddress() => ListenAddress is "*" or "" ? IPAddress.IPv6Any : IPAddress.Parse(ListenAddress);
}

internal sealed class EmulatorOptionsValidator : IValidateOptions<EmulatorOptions>
{
    public ValidateOptionsResult Validate(string? name, EmulatorOptions options)
    {
        var errors = new List<string>();
        CheckPort(errors, nameof(options.HttpPort), options.HttpPort);
        CheckPort(errors, nameof(options.GrpcPort), options.GrpcPort);
        CheckPort(errors, nameof(options.MetricsPort), options.MetricsPort);
        var ports = new[] { options.HttpPort, options.GrpcPort, options.MetricsPort }.Where(static p => p != 0).ToArray();
        if (ports.Distinct().Count() != ports.Length)
        {
            errors.Add($"{EmulatorOptions.SectionName}:HttpPort, GrpcPort and MetricsPort must differ");
        }
        if (options.ListenAddress is not ("*" or "") && !IPAddress.TryParse(options.ListenAddress, out _))
        {
            errors.Add($"{EmulatorOptions.SectionName}:ListenAddress must be '*' or an IP address, got '{options.ListenAddress}'");
        }
        if (!string.IsNullOrEmpty(options.Profile) && TimingProfile.Find(options.Profile) is null)
        {
            errors.Add($"{EmulatorOptions.SectionName}:Profile must be one of {string.Join(", ", TimingProfile.KnownNames)}, got '{options.Profile}'");
        }
        if (!string.IsNullOrWhiteSpace(options.ModelRepository) && !Directory.Exists(options.ModelRepository) && Path.IsPathFullyQualified(options.ModelRepository))
        {
            errors.Add($"{EmulatorOptions.SectionName}:ModelRepository: folder '{options.ModelRepository}' does not exist");
        }
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void CheckPort(List<string> errors, string key, int port)
    {
        if (port is < 0 or > 65535)
        {
            errors.Add($"{EmulatorOptions.SectionName}:{key} must be between 0 and 65535, got {port}");
        }
    }
}
