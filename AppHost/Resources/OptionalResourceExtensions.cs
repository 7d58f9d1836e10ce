using System.Runtime.CompilerServices;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Aspire.Hosting;

/// <summary>Chooses how an optional resource runs on this machine and says so in the AppHost log.</summary>
internal static class OptionalResourceExtensions
{
    private static readonly ConditionalWeakTable<IDistributedApplicationBuilder, IContainerEngineProbe> Probes = [];

    /// <summary>
    /// The choice for <paramref name="name"/> (config section <paramref name="section"/>), logged at
    /// start as one line: what was chosen and why. The container engine is probed once per AppHost.
    /// </summary>
    /// <param name="findExecutable">Where to look for <paramref name="executable"/>; the PATH when null.</param>
    public static ResourceChoice ChooseLocalMode(this IDistributedApplicationBuilder builder, string name, string section, string executable, string embeddedMeans,
        Func<string, string?>? findExecutable = null)
    {
        var probe = Probes.GetValue(builder, static b =>
            new ContainerEngineProbe(b.Configuration.GetValue("ContainerEngine:ProbeTimeout", TimeSpan.FromSeconds(5)), OptionalResourceChooser.FindOnPath));
        var chooser = new OptionalResourceChooser(probe, findExecutable ?? OptionalResourceChooser.FindOnPath);
        var choice = chooser.Choose(builder.Configuration, section, executable, embeddedMeans);
        builder.Eventing.Subscribe<BeforeStartEvent>((@event, _) =>
        {
            var logger = @event.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Aspire.Hosting.OptionalResources");
            var level = choice.Mode == ResourceMode.Embedded ? LogLevel.Warning : LogLevel.Information;
#pragma warning disable CA1848, CA2254 // one line per resource at start, not a hot path
            logger.Log(level, "{Resource}: {Mode} chosen: {Reason}. Force one with --{Section}:Mode=Container|Executable|Embedded",
                name, choice.Mode, choice.Reason, section);
#pragma warning restore CA1848, CA2254
            return Task.CompletedTask;
        });
        return choice;
    }
}
