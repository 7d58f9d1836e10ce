using Aspire.Hosting;
using Microsoft.Extensions.Configuration;

namespace AppHost.Tests.Resources;

public sealed class OptionalResourceChooserTests
{
    private sealed class Engine(string? whyNot) : IContainerEngineProbe
    {
        public int Probes { get; private set; }

        public string? WhyNotWorking()
        {
            Probes++;
            return whyNot;
        }
    }

    private static IConfiguration Config(params (string Key, string Value)[] values) =>
        new ConfigurationBuilder().AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value))).Build();

    private static ResourceChoice Choose(string? engineDown, string? executable, IConfiguration? config = null) =>
        new OptionalResourceChooser(new Engine(engineDown), _ => executable).Choose(config ?? Config(), "Redis", "redis-server", "in-memory quotas");

    [Fact]
    public void WorkingEngine_ChoosesTheContainer_EvenWithTheExecutableInstalled()
    {
        var choice = Choose(engineDown: null, executable: "/usr/bin/redis-server");
        Assert.Equal(ResourceMode.Container, choice.Mode);
    }

    [Fact]
    public void DockerCliWithoutEngine_ChoosesTheLocalExecutable()
    {
        var choice = Choose("'docker info' exited with 1", "/usr/bin/redis-server");
        Assert.Equal(ResourceMode.Executable, choice.Mode);
        Assert.Equal("/usr/bin/redis-server", choice.ExecutablePath);
        Assert.Contains("docker info", choice.Reason);
    }

    [Fact]
    public void NoEngineNoExecutable_ChoosesTheEmbeddedDefault_AndSaysWhy()
    {
        var choice = Choose("'docker info' exited with 1", executable: null);
        Assert.Equal(ResourceMode.Embedded, choice.Mode);
        Assert.Contains("in-memory quotas", choice.Reason);
        Assert.Contains("no redis-server on the PATH", choice.Reason);
    }

    [Fact]
    public void ForcedEmbedded_IsChosen_WithoutProbingTheEngine()
    {
        var engine = new Engine(null);
        var choice = new OptionalResourceChooser(engine, _ => "/usr/bin/redis-server").Choose(Config(("Redis:Mode", "embedded")), "Redis", "redis-server", "x");
        Assert.Equal(ResourceMode.Embedded, choice.Mode);
        Assert.Equal(0, engine.Probes);
    }

    [Fact]
    public void ForcedContainerWithoutEngine_FailsTheStartWithAMessage()
    {
        var ex = Assert.Throws<DistributedApplicationException>(() => Choose("'docker info' exited with 1", "/usr/bin/redis-server", Config(("Redis:Mode", "Container"))));
        Assert.Contains("Redis:Mode=Container", ex.Message);
    }

    [Fact]
    public void ForcedExecutableMissing_FailsTheStartWithAMessage()
    {
        var ex = Assert.Throws<DistributedApplicationException>(() => Choose(null, null, Config(("Redis:Mode", "Executable"))));
        Assert.Contains("redis-server was not found", ex.Message);
    }

    [Fact]
    public void UnknownMode_NamesTheKey()
    {
        var ex = Assert.Throws<DistributedApplicationException>(() => Choose(null, null, Config(("Redis:Mode", "sometimes"))));
        Assert.Contains("Redis:Mode must be one of", ex.Message);
    }

    [Fact]
    public void Probe_DockerThatFailsInfo_IsNotAWorkingEngine()
    {
        var bin = Directory.CreateTempSubdirectory("fake-docker-");
        try
        {
            var docker = FakeDocker.Write(bin.FullName);
            var why = new ContainerEngineProbe(TimeSpan.FromSeconds(10), name => name == "docker" ? docker : null).WhyNotWorking();
            Assert.NotNull(why);
            Assert.Contains("exited with 1", why);
            Assert.Contains("Cannot connect to the Docker daemon", why);
        }
        finally
        {
            bin.Delete(recursive: true);
        }
    }
}

/// <summary>A <c>docker</c> CLI whose engine is not running, as on a machine with Docker Desktop stopped.</summary>
internal static class FakeDocker
{
    public static string Write(string directory)
    {
        var path = Path.Combine(directory, "docker");
        File.WriteAllText(path, "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2\nexit 1\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        return path;
    }
}
