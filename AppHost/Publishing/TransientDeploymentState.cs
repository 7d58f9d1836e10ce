#pragma warning disable ASPIREPIPELINES002 // deployment state API is experimental in Aspire 13
using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Aspire.Hosting.Pipelines;

namespace Aspire.Hosting.Publishing.Kubernetes;

/// <summary>
/// Keeps pipeline state for one run only. Aspire's default saves every parameter value under
/// <c>~/.aspire/deployments</c> after a publish and loads it back, above the command line, on the
/// next one: a single <c>--Parameters:gke-accelerator=nvidia-l4</c> would then stick, later
/// overrides would be ignored, and <c>aspirate-output/</c> would depend on the machine's history
/// instead of on the AppHost and its arguments. Nothing here deploys, so nothing needs to persist.
/// </summary>
internal sealed class TransientDeploymentState : IDeploymentStateManager
{
    private readonly ConcurrentDictionary<string, DeploymentStateSection> _sections = new(StringComparer.Ordinal);

    public string? StateFilePath => null;

    public Task<DeploymentStateSection> AcquireSectionAsync(string sectionName, CancellationToken cancellationToken = default)
    {
        var section = _sections.GetValueOrDefault(sectionName);
        return Task.FromResult(new DeploymentStateSection(sectionName, section?.Data.DeepClone().AsObject() ?? [], section?.Version ?? 0));
    }

    public Task SaveSectionAsync(DeploymentStateSection section, CancellationToken cancellationToken = default)
    {
        _sections[section.SectionName] = new DeploymentStateSection(section.SectionName, section.Data.DeepClone().AsObject(), section.Version + 1);
        return Task.CompletedTask;
    }

    public Task DeleteSectionAsync(DeploymentStateSection section, CancellationToken cancellationToken = default)
    {
        _sections.TryRemove(section.SectionName, out _);
        return Task.CompletedTask;
    }

    public Task ClearAllStateAsync(CancellationToken cancellationToken = default)
    {
        _sections.Clear();
        return Task.CompletedTask;
    }
}
