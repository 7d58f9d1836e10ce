using Triton.Inference;
using TritonEmulator.Repository;

namespace TritonEmulator.Tests.Repository;

/// <summary>The shipped models/fastertransformer/config.pbtxt is FasterTransformer's GPT-J contract.</summary>
public sealed class ShippedModelConfigTests
{
    private static readonly ModelConfig Config = TextFormat.Parse<ModelConfig>(
        File.ReadAllText(Path.Combine(RepositoryPaths.ModelsFolder, "fastertransformer", "config.pbtxt")));

    [Fact]
    public void Header_IsTheFasterTransformerGptJModel()
    {
        Assert.Equal("fastertransformer", Config.Name);
        Assert.Equal("fastertransformer", Config.Backend);
        Assert.Equal("", Config.Platform);
        Assert.Equal("gpt-j-6b", Config.DefaultModelFilename);
        Assert.Equal(64, Config.MaxBatchSize);
        Assert.True(Config.ModelTransactionPolicy.Decoupled);
        Assert.Null(Config.VersionPolicy);
    }

    [Fact]
    public void DynamicBatching_HasTwoPriorityLevelsAndABoundedQueue()
    {
        Assert.Equal(ModelConfig.SchedulingChoiceOneofCase.DynamicBatching, Config.SchedulingChoiceCase);
        var batching = Config.DynamicBatching;
        Assert.True(batching.MaxQueueDelayMicroseconds > 0);
        Assert.NotEmpty(batching.PreferredBatchSize);
        Assert.All(batching.PreferredBatchSize, size => Assert.InRange(size, 1, Config.MaxBatchSize));
        Assert.Equal(2UL, batching.PriorityLevels);
        Assert.Equal(2UL, batching.DefaultPriorityLevel);
        Assert.True(batching.DefaultQueuePolicy.MaxQueueSize > 0);
    }

    public static TheoryData<string, DataType, long[], bool, bool> Inputs => new()
    {
        // name, type, dims, reshape to [] (scalar per batch item), optional
        { "input_ids", DataType.TypeUint32, [-1], false, false },
        { "input_lengths", DataType.TypeUint32, [1], true, false },
        { "request_output_len", DataType.TypeUint32, [-1], false, false },
        { "runtime_top_k", DataType.TypeUint32, [1], true, true },
        { "runtime_top_p", DataType.TypeFp32, [1], true, true },
        { "beam_search_diversity_rate", DataType.TypeFp32, [1], true, true },
        { "temperature", DataType.TypeFp32, [1], true, true },
        { "len_penalty", DataType.TypeFp32, [1], true, true },
        { "repetition_penalty", DataType.TypeFp32, [1], true, true },
        { "random_seed", DataType.TypeUint64, [1], true, true },
        { "is_return_log_probs", DataType.TypeBool, [1], true, true },
        { "beam_width", DataType.TypeUint32, [1], true, true },
        { "start_id", DataType.TypeUint32, [1], true, true },
        { "end_id", DataType.TypeUint32, [1], true, true },
        { "stop_words_list", DataType.TypeInt32, [2, -1], false, true },
        { "bad_words_list", DataType.TypeInt32, [2, -1], false, true },
        { "prompt_learning_task_name_ids", DataType.TypeUint32, [1], true, true },
        { "top_p_decay", DataType.TypeFp32, [1], true, true },
        { "top_p_min", DataType.TypeFp32, [1], true, true },
        { "top_p_reset_ids", DataType.TypeUint32, [1], true, true },
    };

    [Theory]
    [MemberData(nameof(Inputs))]
    public void Input_MatchesTheFasterTransformerContract(string name, DataType type, long[] dims, bool reshapeToScalar, bool optional)
    {
        var input = Assert.Single(Config.Input, i => i.Name == name);

        Assert.Equal(type, input.DataType);
        Assert.Equal(dims, input.Dims);
        Assert.Equal(optional, input.Optional);
        if (reshapeToScalar)
        {
            Assert.NotNull(input.Reshape);
            Assert.Empty(input.Reshape.Shape);
        }
        else
        {
            Assert.Null(input.Reshape);
        }

        Assert.False(input.AllowRaggedBatch);
        Assert.Equal(ModelInput.Types.Format.None, input.Format);
    }

    [Fact]
    public void Inputs_AreExactlyTheGptJSet()
    {
        var expected = Inputs.Select(row => (string)row[0]).Order(StringComparer.Ordinal);

        Assert.Equal(expected, Config.Input.Select(i => i.Name).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Outputs_MatchTheFasterTransformerContract()
    {
        Assert.Equal(
            [
                ("output_ids", DataType.TypeUint32, "-1,-1"),
                ("sequence_length", DataType.TypeUint32, "-1"),
                ("cum_log_probs", DataType.TypeFp32, "-1"),
                ("output_log_probs", DataType.TypeFp32, "-1,-1"),
            ],
            Config.Output.Select(o => (o.Name, o.DataType, string.Join(",", o.Dims))));
        Assert.All(Config.Output, o => Assert.Null(o.Reshape));
    }

    [Fact]
    public void InstanceGroup_IsOneCpuInstance()
    {
        var group = Assert.Single(Config.InstanceGroup);
        Assert.Equal(1, group.Count);
        Assert.Equal(ModelInstanceGroup.Types.Kind.Cpu, group.Kind);
    }

    [Fact]
    public void Parameters_CarryTheFasterTransformerAndEngineSettings()
    {
        var parameters = Config.Parameters.ToDictionary(p => p.Key, p => p.Value.StringValue);

        Assert.Equal("1", parameters["tensor_para_size"]);
        Assert.Equal("1", parameters["pipeline_para_size"]);
        Assert.Equal("fp16", parameters["data_type"]);
        Assert.Equal("GPT-J", parameters["model_type"]);
        Assert.Equal("/models/fastertransformer/1/gpt-j-6b", parameters["model_checkpoint_path"]);
        Assert.Equal("0", parameters["enable_custom_all_reduce"]);
        Assert.Equal("a100-gptj-6b", parameters["emulator_profile"]);
        Assert.Equal("static", parameters["emulator_batching_mode"]);
    }

    [Fact]
    public void CheckpointPath_PointsIntoThisModelsVersionFolder()
    {
        // Real Triton mounts models/ at /models, so the path must name this model's version 1 folder.
        var path = Config.Parameters["model_checkpoint_path"].StringValue;
        var relative = Path.GetRelativePath("/models", path).Split('/');

        Assert.Equal(["fastertransformer", "1", Config.DefaultModelFilename], relative);
        Assert.True(Directory.Exists(Path.Combine(RepositoryPaths.ModelsFolder, "fastertransformer", "1")));
    }

    [Fact]
    public void ConfigIni_DescribesGptJ6B()
    {
        var lines = File.ReadAllLines(Path.Combine(RepositoryPaths.ModelsFolder, "fastertransformer", "1", "config.ini"));
        Assert.Equal("[gptj]", lines[0]);
        var values = lines.Skip(1).Where(l => l.Contains('=')).Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);

        Assert.Equal("16", values["head_num"]);
        Assert.Equal("256", values["size_per_head"]);
        Assert.Equal("28", values["num_layer"]);
        Assert.Equal("64", values["rotary_embedding"]);
        Assert.Equal("50400", values["vocab_size"]);
        Assert.Equal("50256", values["start_id"]);
        Assert.Equal("50256", values["end_id"]);
    }

    [Fact]
    public void ShippedRepository_ServesFasterTransformerReadyAtVersion1()
    {
        var model = Assert.Single(ModelRepositoryReader.Read(RepositoryPaths.ModelsFolder), m => m.Name == "fastertransformer");

        Assert.Equal("fastertransformer", model.Name);
        Assert.Equal(ModelState.Ready, model.State);
        Assert.Equal([1L], model.Versions);
        Assert.Equal(Config, model.Config);
        Assert.Equal("", model.Reason);
    }
}
