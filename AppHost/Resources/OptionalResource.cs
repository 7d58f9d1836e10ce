using System.Diagnostics;
using Microsoft.Extensions.Configuration;

namespace Aspire.Hosting;

/// <summary>How an optional resource (redis, later postgres) runs locally.</summary>
internal enum ResourceMode
{
    /// <summary>Decide by probing: a working container engine, else the local executable, else embedded.</summary>
    Auto,
    Container,
    Executable,
    /// <summary>No resource: the service's built-in default (in-process quotas, a local file...).</summary>
    Embedded,
}

/// <summary>What was chosen for a resource and why, in words for the AppHost log.</summary>
internal sealed record ResourceChoice(ResourceMode Mode, string Reason, string? ExecutablePath = null);

/// <summary>Whether a container engine really runs (not just whether its CLI is on the PATH).</summary>
internal interface IContainerEngineProbe
{
    /// <summary>Null when an engine answers, else why not (for the log).</summary>
    string? WhyNotWorking();
}

/// <summary>
/// The one rule every optional local resource follows, so nothing ever waits on a resource that
/// cannot start: a container where an engine works (<c>docker info</c> succeeds), else the local
/// executable where it is installed, else the embedded default. <c>{Section}:Mode</c>
/// (Auto | Container | Executable | Embedded) forces one; a forced choice that cannot work fails
/// the start with a message, never a hang. <c>{Section}:Executable</c> names the executable's path.
/// </summary>
internal sealed class OptionalResourceChooser(IContainerEngineProbe engine, Func<string, string?> findExecutable)
{
    public ResourceChoice Choose(IConfiguration configuration, string section, string executable, string embeddedMeans)
    {
        var modeText = configuration[$"{section}:Mode"];
        var mode = ResourceMode.Auto;
        if (!string.IsNullOrWhiteSpace(modeText) && !Enum.TryParse(modeText, ignoreCase: true, out mode))
        {
            throw new DistributedApplicationException(
                $"{section}:Mode must be one of Auto, Container, Executable, Embedded (was '{modeText}').");
        }
        var configured = configuration[$"{section}:Executable"];
        string? Executable() => string.IsNullOrWhiteSpace(configured) ? findExecutable(executable) : File.Exists(configured) ? configured : null;
        var force = $"(forced with {section}:Mode={mode})";
        switch (mode)
        {
            case ResourceMode.Container:
                return engine.WhyNotWorking() is { } notWorking
                    ? throw new DistributedApplicationException($"{section}:Mode=Container, but no container engine works: {notWorking}.")
                    : new ResourceChoice(ResourceMode.Container, $"container {force}");
            case ResourceMode.Executable:
                return Executable() is { } forcedPath
                    ? new ResourceChoice(ResourceMode.Executable, $"local {executable} at {forcedPath} {force}", forcedPath)
                    : throw new DistributedApplicationException($"{section}:Mode=Executable, but {configured ?? executable} was not found (install it, or set {section}:Executable).");
            case ResourceMode.Embedded:
                return new ResourceChoice(ResourceMode.Embedded, $"embedded default: {embeddedMeans} {force}");
        }
        var whyNoContainer = engine.WhyNotWorking();
        if (whyNoContainer is null)
        {
            return new ResourceChoice(ResourceMode.Container, "container: a container engine answers");
        }
        if (Executable() is { } path)
        {
            return new ResourceChoice(ResourceMode.Executable, $"local {executable} at {path}: no working container engine ({whyNoContainer})", path);
        }
        return new ResourceChoice(ResourceMode.Embedded,
            $"embedded default: {embeddedMeans}; no working container engine ({whyNoContainer}) and no {executable} on the PATH");
    }

    /// <summary>The first <paramref name="executable"/> in a PATH directory, or null.</summary>
    public static string? FindOnPath(string executable)
    {
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, executable);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
    }
}

/// <summary>
/// Runs <c>docker info</c> (or the runtime Aspire is told to use, <c>ASPIRE_CONTAINER_RUNTIME</c>)
/// once, with a short timeout: an engine that does not answer in time does not work.
/// </summary>
internal sealed class ContainerEngineProbe(TimeSpan timeout, Func<string, string?> findExecutable) : IContainerEngineProbe
{
    private readonly Lazy<string?> _result = new(() => Probe(timeout, findExecutable));

    public string? WhyNotWorking() => _result.Value;

    private static string? Probe(TimeSpan timeout, Func<string, string?> findExecutable)
    {
        var runtime = Environment.GetEnvironmentVariable("ASPIRE_CONTAINER_RUNTIME") is { Length: > 0 } named ? named : "docker";
        if (findExecutable(runtime) is not { } cli)
        {
            return $"no {runtime} executable on the PATH";
        }
        var start = new ProcessStartInfo(cli, ["info", "--format", "{{.ServerVersion}}"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        try
        {
            using var process = Process.Start(start)!;
            process.StandardInput.Close();
            var error = process.StandardError.ReadToEndAsync();
            _ = process.StandardOutput.ReadToEndAsync();
            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                return $"'{runtime} info' did not answer within {timeout.TotalSeconds:0.#} s";
            }
            if (process.ExitCode == 0)
            {
                return null;
            }
            var firstLine = error.Wait(TimeSpan.FromSeconds(1)) ? error.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() : null;
            return $"'{runtime} info' exited with {process.ExitCode}" + (firstLine is null ? "" : ": " + firstLine);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return $"'{runtime} info' could not run: {ex.Message}";
        }
    }
}
