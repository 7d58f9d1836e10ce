using Google.Protobuf;
using Triton.Inference;
using TritonEmulator.Repository;

namespace TritonEmulator.Tests.Repository;

public sealed class TextFormatParserTests
{
    [Fact]
    public void Parse_ScalarFieldsAndNestedMessages_FillsConfig()
    {
        var config = TextFormat.Parse<ModelConfig>("""
            name: "gpt"
            backend: 'fastertransformer'
            max_batch_size: 8
            model_transaction_policy { decoupled: true }
            response_cache: { enable: True }
            optimization < eager_batching: t >
            """);

        Assert.Equal("gpt", config.Name);
        Assert.Equal("fastertransformer", config.Backend);
        Assert.Equal(8, config.MaxBatchSize);
        Assert.True(config.ModelTransactionPolicy.Decoupled);
        Assert.True(config.ResponseCache.Enable);
        Assert.True(config.Optimization.EagerBatching);
    }

    [Fact]
    public void Parse_EmptyInput_GivesDefaultMessage()
    {
        Assert.Equal(new ModelConfig(), TextFormat.Parse<ModelConfig>("  # only a comment\n\n"));
    }

    [Fact]
    public void Parse_EmptyNestedMessage_IsPresent()
    {
        var config = TextFormat.Parse<ModelConfig>("model_transaction_policy {}\ninput { name: \"x\" reshape: { shape: [ ] } }");

        Assert.NotNull(config.ModelTransactionPolicy);
        Assert.False(config.ModelTransactionPolicy.Decoupled);
        Assert.NotNull(config.Input[0].Reshape);
        Assert.Empty(config.Input[0].Reshape.Shape);
    }

    [Fact]
    public void Parse_RepeatedScalars_AcceptsListsAndRepeatedEntriesTogether()
    {
        var input = TextFormat.Parse<ModelInput>("dims: [ -1, 2 ]\ndims: 3\ndims: []\ndims: [4]");

        Assert.Equal([-1L, 2L, 3L, 4L], input.Dims);
    }

    [Fact]
    public void Parse_RepeatedMessages_AcceptsListWithOrWithoutColonAndRepeatedEntries()
    {
        var config = TextFormat.Parse<ModelConfig>("""
            input [ { name: "a" }, < name: "b" > ]
            input: [ { name: "c" } ]
            input { name: "d" }
            output: { name: "e" }
            """);

        Assert.Equal(["a", "b", "c", "d"], config.Input.Select(i => i.Name));
        Assert.Equal("e", Assert.Single(config.Output).Name);
    }

    [Fact]
    public void Parse_CommentsAndSeparators_AreSkipped()
    {
        var config = TextFormat.Parse<ModelConfig>("""
            # leading comment
            name: "m"; max_batch_size: 4, # trailing comment with "quotes" and { braces
            input { name: "a"; data_type: TYPE_FP32, dims: [ 1 ]; },
            """);

        Assert.Equal("m", config.Name);
        Assert.Equal(4, config.MaxBatchSize);
        Assert.Equal(DataType.TypeFp32, config.Input[0].DataType);
    }

    [Theory]
    [InlineData("10", 10)]
    [InlineData("-2147483648", int.MinValue)]
    [InlineData("2147483647", int.MaxValue)]
    [InlineData("0x1F", 31)]
    [InlineData("0X7fffffff", int.MaxValue)]
    [InlineData("017", 15)]
    [InlineData("- 5", -5)]
    [InlineData("0", 0)]
    public void Parse_Int32_AcceptsDecimalHexOctalAndSign(string text, int expected)
    {
        Assert.Equal(expected, TextFormat.Parse<ModelConfig>($"max_batch_size: {text}").MaxBatchSize);
    }

    [Fact]
    public void Parse_SixtyFourBitAndUnsignedIntegers_CoverTheirFullRanges()
    {
        var contents = TextFormat.Parse<InferTensorContents>("""
            int64_contents: [ -9223372036854775808, 9223372036854775807, 0x7FFFFFFFFFFFFFFF ]
            uint_contents: [ 0, 4294967295, 0xFFFFFFFF ]
            uint64_contents: [ 18446744073709551615, 0xffffffffffffffff, 01777777777777777777777 ]
            int_contents: [ -1, 0x10 ]
            """);

        Assert.Equal([long.MinValue, long.MaxValue, long.MaxValue], contents.Int64Contents);
        Assert.Equal([0u, uint.MaxValue, uint.MaxValue], contents.UintContents);
        Assert.Equal([ulong.MaxValue, ulong.MaxValue, ulong.MaxValue], contents.Uint64Contents);
        Assert.Equal([-1, 16], contents.IntContents);
    }

    [Fact]
    public void Parse_FloatsAndDoubles_AcceptEveryNumberForm()
    {
        var contents = TextFormat.Parse<InferTensorContents>("""
            fp32_contents: [ 1.5, -2, 1e-3, 2.5f, .5, 3F, 1E+2, inf, -inf, Infinity, 0x10 ]
            fp64_contents: [ 0.1, -1e308, nan, -0.0, 7 ]
            """);

        Assert.Equal([1.5f, -2f, 1e-3f, 2.5f, 0.5f, 3f, 100f, float.PositiveInfinity, float.NegativeInfinity, float.PositiveInfinity, 16f], contents.Fp32Contents);
        Assert.Equal(0.1, contents.Fp64Contents[0]);
        Assert.Equal(-1e308, contents.Fp64Contents[1]);
        Assert.True(double.IsNaN(contents.Fp64Contents[2]));
        Assert.True(double.IsNegative(contents.Fp64Contents[3]) && contents.Fp64Contents[3] == 0);
        Assert.Equal(7.0, contents.Fp64Contents[4]);
    }

    [Fact]
    public void Parse_Bools_AcceptEverySpelling()
    {
        var contents = TextFormat.Parse<InferTensorContents>("bool_contents: [ true, false, True, False, t, f, 1, 0 ]");

        Assert.Equal([true, false, true, false, true, false, true, false], contents.BoolContents);
    }

    [Fact]
    public void Parse_Strings_DecodeEscapesBothQuoteStylesAndConcatenateAdjacentLiterals()
    {
        var config = TextFormat.Parse<ModelConfig>("""
            name: "a\"b\'c\\d\n\t"
            platform: 'single \'quoted\' "inside"'
            backend: "con" 'cat'
              "enated"
            runtime: "\101\x42\x4a\u00e9\U0001F600?\?"
            default_model_filename: "ünïcode ✓"
            """);

        Assert.Equal("a\"b'c\\d\n\t", config.Name);
        Assert.Equal("single 'quoted' \"inside\"", config.Platform);
        Assert.Equal("concatenated", config.Backend);
        Assert.Equal("ABJé😀??", config.Runtime);
        Assert.Equal("ünïcode ✓", config.DefaultModelFilename);
    }

    [Fact]
    public void Parse_Bytes_KeepsRawEscapedBytes()
    {
        var contents = TextFormat.Parse<InferTensorContents>("""bytes_contents: [ "\000\377\x80abc", "é" ]""");

        Assert.Equal(new byte[] { 0, 255, 0x80, (byte)'a', (byte)'b', (byte)'c' }, contents.BytesContents[0].ToByteArray());
        Assert.Equal(ByteString.CopyFromUtf8("é"), contents.BytesContents[1]);
    }

    [Fact]
    public void Parse_Enums_AcceptNamesAndNumbers()
    {
        var config = TextFormat.Parse<ModelConfig>("""
            input { data_type: TYPE_UINT32 format: 1 }
            input { data_type: 13 }
            instance_group [ { kind: KIND_CPU }, { kind: 3 } ]
            """);

        Assert.Equal(DataType.TypeUint32, config.Input[0].DataType);
        Assert.Equal(ModelInput.Types.Format.Nhwc, config.Input[0].Format);
        Assert.Equal(DataType.TypeString, config.Input[1].DataType);
        Assert.Equal(ModelInstanceGroup.Types.Kind.Cpu, config.InstanceGroup[0].Kind);
        Assert.Equal(ModelInstanceGroup.Types.Kind.Model, config.InstanceGroup[1].Kind);
    }

    [Fact]
    public void Parse_MapFields_ReadKeyValueEntriesInEveryForm()
    {
        var config = TextFormat.Parse<ModelConfig>("""
            parameters { key: "tensor_para_size" value: { string_value: "1" } }
            parameters: { key: "data_type", value { string_value: "fp16" } }
            parameters [ { key: "a" value < string_value: "x" > }, { value: { string_value: "no key" } } ]
            parameters { key: "empty" }
            metric_tags { key: "team" value: "llm" }
            cc_model_filenames { value: "v" key: "k" }
            dynamic_batching { priority_queue_policy { key: 1 value { max_queue_size: 5 } } }
            """);

        Assert.Equal("1", config.Parameters["tensor_para_size"].StringValue);
        Assert.Equal("fp16", config.Parameters["data_type"].StringValue);
        Assert.Equal("x", config.Parameters["a"].StringValue);
        Assert.Equal("no key", config.Parameters[""].StringValue);
        Assert.Equal(new ModelParameter(), config.Parameters["empty"]);
        Assert.Equal("llm", config.MetricTags["team"]);
        Assert.Equal("v", config.CcModelFilenames["k"]);
        Assert.Equal(5u, config.DynamicBatching.PriorityQueuePolicy[1UL].MaxQueueSize);
    }

    [Fact]
    public void Parse_MapEntryGivenTwice_LastValueWins()
    {
        var config = TextFormat.Parse<ModelConfig>("metric_tags { key: \"a\" value: \"1\" }\nmetric_tags { key: \"a\" value: \"2\" }");

        Assert.Equal("2", Assert.Single(config.MetricTags).Value);
    }

    [Fact]
    public void Parse_OneofMembers_SetTheirCase()
    {
        var sequence = TextFormat.Parse<ModelConfig>("sequence_batching { oldest { max_candidate_sequences: 4 } }");
        var policy = TextFormat.Parse<ModelVersionPolicy>("specific { versions: [ 1, 3 ] }");
        var parameter = TextFormat.Parse<InferParameter>("double_param: -2.5");
        var falseBool = TextFormat.Parse<InferParameter>("bool_param: false");

        Assert.Equal(ModelConfig.SchedulingChoiceOneofCase.SequenceBatching, sequence.SchedulingChoiceCase);
        Assert.Equal(4, sequence.SequenceBatching.Oldest.MaxCandidateSequences);
        Assert.Equal(ModelVersionPolicy.PolicyChoiceOneofCase.Specific, policy.PolicyChoiceCase);
        Assert.Equal([1L, 3L], policy.Specific.Versions);
        Assert.Equal(-2.5, parameter.DoubleParam);
        Assert.Equal(InferParameter.ParameterChoiceOneofCase.BoolParam, falseBool.ParameterChoiceCase);
    }

    [Fact]
    public void Parse_ByDescriptor_ReturnsTheGeneratedType()
    {
        var message = TextFormat.Parse("name: \"x\" max_batch_size: 2", ModelConfig.Descriptor);

        var config = Assert.IsType<ModelConfig>(message);
        Assert.Equal(new ModelConfig { Name = "x", MaxBatchSize = 2 }, config);
    }

    [Fact]
    public void Parse_WindowsLineEndingsAndTabs_AreWhitespace()
    {
        var config = TextFormat.Parse<ModelConfig>("name:\t\"m\"\r\nmax_batch_size:\t2\r\n");

        Assert.Equal(new ModelConfig { Name = "m", MaxBatchSize = 2 }, config);
    }
}
