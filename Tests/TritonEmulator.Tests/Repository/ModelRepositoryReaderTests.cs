using TritonEmulator.Repository;

namespace TritonEmulator.Tests.Repository;

public sealed class ModelRepositoryReaderTests : IDisposable
{
    private const string Minimal = "backend: \"fastertransformer\"\nmax_batch_size: 4\n";
    private readonly TempRepository _repo = new();

    public void Dispose() => _repo.Dispose();

    private RepositoryModel ReadOne(string name) => Assert.Single(ModelRepositoryReader.Read(_repo.Root), m => m.Name == name);

    [Fact]
    public void Read_ValidModel_IsReadyWithParsedConfigAndLatestVersion()
    {
        _repo.Model("gpt", "name: \"gpt\"\n" + Minimal, "1", "2");

        var model = ReadOne("gpt");

        Assert.Equal(ModelState.Ready, model.State);
        Assert.Equal("", model.Reason);
        Assert.Equal(Path.Combine(_repo.Root, "gpt"), model.Directory);
        Assert.Equal("gpt", model.Config!.Name);
        Assert.Equal(4, model.Config.MaxBatchSize);
        Assert.Equal([2L], model.Versions);
    }

    [Fact]
    public void Read_EmptyConfigName_TakesTheFolderName()
    {
        _repo.Model("unnamed", Minimal, "1");

        var model = ReadOne("unnamed");

        Assert.Equal(ModelState.Ready, model.State);
        Assert.Equal("unnamed", model.Config!.Name);
    }

    [Fact]
    public void Read_ModelsComeBackSortedByNameOrdinal()
    {
        _repo.Model("b", Minimal, "1").Model("A", Minimal, "1").Model("a", Minimal, "1").Model("a_2", Minimal, "1");

        Assert.Equal(["A", "a", "a_2", "b"], ModelRepositoryReader.Read(_repo.Root).Select(m => m.Name));
    }

    [Fact]
    public void Read_UnparseableConfig_IsUnavailableWithLineAndColumn()
    {
        _repo.Model("broken", "name: \"broken\"\nmax_batch_sise: 8\n", "1");

        var model = ReadOne("broken");

        Assert.Equal(ModelState.Unavailable, model.State);
        Assert.Null(model.Config);
        Assert.Empty(model.Versions);
        Assert.Contains("unknown field \"max_batch_sise\" in inference.ModelConfig (line 2, column 1)", model.Reason, StringComparison.Ordinal);
        Assert.Contains(Path.Combine(_repo.Root, "broken", "config.pbtxt"), model.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_OneBrokenModel_LeavesTheOthersReady()
    {
        _repo.Model("good", Minimal, "1").Model("bad", "input { name: \"x\"", "1");

        var models = ModelRepositoryReader.Read(_repo.Root);

        Assert.Equal([("bad", ModelState.Unavailable), ("good", ModelState.Ready)], models.Select(m => (m.Name, m.State)));
        Assert.Contains("(line 1, column 7)", models[0].Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_MissingConfig_IsUnavailable()
    {
        _repo.Model("noconfig", config: null, "1");

        var model = ReadOne("noconfig");

        Assert.Equal(ModelState.Unavailable, model.State);
        Assert.Null(model.Config);
        Assert.Contains("config.pbtxt", model.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_NameDifferentFromFolder_IsUnavailableNamingBoth()
    {
        _repo.Model("folder", "name: \"other\"\n" + Minimal, "1");

        var model = ReadOne("folder");

        Assert.Equal(ModelState.Unavailable, model.State);
        Assert.Equal("other", model.Config!.Name);
        Assert.Empty(model.Versions);
        Assert.Contains("'folder'", model.Reason, StringComparison.Ordinal);
        Assert.Contains("'other'", model.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_NoVersionFolder_IsUnavailable()
    {
        _repo.Model("noversions", Minimal, "latest", "v1", ".2");
        File.WriteAllText(Path.Combine(_repo.Root, "noversions", "3"), "a file, not a folder");

        var model = ReadOne("noversions");

        Assert.Equal(ModelState.Unavailable, model.State);
        Assert.NotNull(model.Config);
        Assert.Empty(model.Versions);
        Assert.Contains("no version folder", model.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_DefaultPolicy_ServesOnlyTheNumericallyLatestVersion()
    {
        _repo.Model("m", Minimal, "2", "10", "9", "notaversion", "-1", "+3");

        Assert.Equal([10L], ReadOne("m").Versions);
    }

    [Fact]
    public void Read_LatestPolicy_ServesTheNewestN()
    {
        _repo.Model("m", Minimal + "version_policy: { latest: { num_versions: 2 } }", "1", "3", "2");

        Assert.Equal([2L, 3L], ReadOne("m").Versions);
    }

    [Fact]
    public void Read_LatestPolicyAskingForMoreThanExist_ServesAll()
    {
        _repo.Model("m", Minimal + "version_policy { latest { num_versions: 5 } }", "1", "2");

        Assert.Equal([1L, 2L], ReadOne("m").Versions);
    }

    [Fact]
    public void Read_LatestPolicyWithZeroVersions_IsUnavailable()
    {
        _repo.Model("m", Minimal + "version_policy { latest { num_versions: 0 } }", "1");

        var model = ReadOne("m");

        Assert.Equal(ModelState.Unavailable, model.State);
        Assert.Contains("num_versions", model.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_AllPolicy_ServesEveryVersionAscending()
    {
        _repo.Model("m", Minimal + "version_policy { all { } }", "3", "1", "20");

        Assert.Equal([1L, 3L, 20L], ReadOne("m").Versions);
    }

    [Fact]
    public void Read_SpecificPolicy_ServesTheNamedVersionsThatExist()
    {
        _repo.Model("m", Minimal + "version_policy { specific { versions: [ 3, 1, 7 ] } }", "1", "2", "3");

        var model = ReadOne("m");

        Assert.Equal(ModelState.Ready, model.State);
        Assert.Equal([1L, 3L], model.Versions);
        Assert.Contains("7", model.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_SpecificPolicyWithNoMatchingFolder_IsUnavailable()
    {
        _repo.Model("m", Minimal + "version_policy { specific { versions: 4 } }", "1");

        var model = ReadOne("m");

        Assert.Equal(ModelState.Unavailable, model.State);
        Assert.Empty(model.Versions);
        Assert.Contains("[4]", model.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_HiddenFoldersAndFiles_AreIgnored()
    {
        _repo.Model("visible", Minimal, "1").Model(".hidden", Minimal, "1").Model(".git", config: null);
        File.WriteAllText(Path.Combine(_repo.Root, "README.md"), "not a model");
        File.WriteAllText(Path.Combine(_repo.Root, ".DS_Store"), "");

        Assert.Equal(["visible"], ModelRepositoryReader.Read(_repo.Root).Select(m => m.Name));
    }

    [Fact]
    public void Read_EmptyRepository_ReturnsNoModels()
    {
        Assert.Empty(ModelRepositoryReader.Read(_repo.Root));
    }

    [Fact]
    public void Read_MissingRepository_ThrowsWithThePath()
    {
        var missing = Path.Combine(_repo.Root, "does-not-exist");

        var error = Assert.Throws<DirectoryNotFoundException>(() => ModelRepositoryReader.Read(missing));

        Assert.Contains(missing, error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(ModelState.Unknown, "UNKNOWN")]
    [InlineData(ModelState.Ready, "READY")]
    [InlineData(ModelState.Unavailable, "UNAVAILABLE")]
    [InlineData(ModelState.Loading, "LOADING")]
    [InlineData(ModelState.Unloading, "UNLOADING")]
    public void ToWireString_GivesTritonsStateNames(ModelState state, string wire)
    {
        Assert.Equal(wire, state.ToWireString());
    }
}
