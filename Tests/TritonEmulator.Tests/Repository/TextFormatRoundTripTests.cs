using System.Text;
using Google.Protobuf;
using Triton.Inference;
using TritonEmulator.Repository;

namespace TritonEmulator.Tests.Repository;

public sealed class TextFormatRoundTripTests
{
    [Theory]
    [MemberData(nameof(Seeds))]
    public void PrintThenParse_RandomModelConfig_GivesAnEqualMessage(int seed)
    {
        var original = new ConfigGenerator(new Random(seed)).Config();

        var text = TextFormat.Print(original);
        var parsed = TextFormat.Parse<ModelConfig>(text);

        Assert.Equal(original, parsed);
        Assert.Equal(text, TextFormat.Print(parsed));
    }

    public static TheoryData<int> Seeds()
    {
        var seeds = new TheoryData<int>();
        for (int seed = 1; seed <= 200; seed++)
        {
            seeds.Add(seed);
        }

        return seeds;
    }

    [Fact]
    public void PrintThenParse_RandomTensorContents_KeepsEveryScalarType()
    {
        var random = new Random(7);
        for (int round = 0; round < 100; round++)
        {
            var contents = new InferTensorContents();
            for (int i = 0; i < 5; i++)
            {
                contents.BoolContents.Add(random.Next(2) == 1);
                contents.IntContents.Add(random.Next(int.MinValue, int.MaxValue));
                contents.Int64Contents.Add(random.NextInt64(long.MinValue, long.MaxValue));
                contents.UintContents.Add((uint)random.NextInt64(0, uint.MaxValue + 1L));
                contents.Uint64Contents.Add((ulong)random.NextInt64() * 2 + (ulong)random.Next(2));
                contents.Fp32Contents.Add(BitConverter.Int32BitsToSingle(random.Next()) is var f && float.IsNaN(f) ? 1.25f : f);
                contents.Fp64Contents.Add(BitConverter.Int64BitsToDouble(random.NextInt64()) is var d && double.IsNaN(d) ? -0.0 : d);
                var bytes = new byte[random.Next(0, 8)];
                random.NextBytes(bytes);
                contents.BytesContents.Add(ByteString.CopyFrom(bytes));
            }

            contents.Fp32Contents.Add(float.PositiveInfinity);
            contents.Fp64Contents.Add(double.NegativeInfinity);

            Assert.Equal(contents, TextFormat.Parse<InferTensorContents>(TextFormat.Print(contents)));
        }
    }

    [Fact]
    public void Print_UsesProtobufTextLayout()
    {
        var config = new ModelConfig
        {
            Name = "m",
            MaxBatchSize = 4,
            Input = { new ModelInput { Name = "x", DataType = DataType.TypeUint32, Dims = { -1 }, Reshape = new ModelTensorReshape() } },
            Parameters = { ["k"] = new ModelParameter { StringValue = "v\"" } },
        };

        Assert.Equal(
            "name: \"m\"\nmax_batch_size: 4\ninput {\n  name: \"x\"\n  data_type: TYPE_UINT32\n  dims: -1\n  reshape {\n  }\n}\n"
            + "parameters {\n  key: \"k\"\n  value {\n    string_value: \"v\\\"\"\n  }\n}\n",
            TextFormat.Print(config));
    }

    [Fact]
    public void Parse_HandWrittenText_EqualsTheConfigBuiltInCode()
    {
        var expected = new ModelConfig
        {
            Name = "ensemble",
            Platform = "ensemble",
            VersionPolicy = new ModelVersionPolicy { Specific = new ModelVersionPolicy.Types.Specific { Versions = { 1, 3 } } },
            MaxBatchSize = 128,
            Input = { new ModelInput { Name = "INPUT_0", DataType = DataType.TypeString, Dims = { -1 } } },
            Output = { new ModelOutput { Name = "OUTPUT_0", DataType = DataType.TypeString, Dims = { -1, -1 } } },
            EnsembleScheduling = new ModelEnsembling
            {
                Step =
                {
                    new ModelEnsembling.Types.Step
                    {
                        ModelName = "preprocessing",
                        ModelVersion = -1,
                        InputMap = { ["QUERY"] = "INPUT_0" },
                        OutputMap = { ["INPUT_ID"] = "_INPUT_ID", ["REQUEST_INPUT_LEN"] = "_REQUEST_INPUT_LEN" },
                    },
                },
            },
            InstanceGroup = { new ModelInstanceGroup { Count = 2, Kind = ModelInstanceGroup.Types.Kind.Gpu, Gpus = { 0, 1 } } },
            ModelWarmup =
            {
                new ModelWarmup
                {
                    Name = "w",
                    BatchSize = 1,
                    Inputs = { ["INPUT_0"] = new ModelWarmup.Types.Input { DataType = DataType.TypeString, Dims = { 1 }, ZeroData = true } },
                },
            },
        };

        var parsed = TextFormat.Parse<ModelConfig>("""
            name: "ensemble"
            platform: "ensemble"
            version_policy: { specific: { versions: [1, 3] } }
            max_batch_size: 128
            input [ { name: "INPUT_0", data_type: TYPE_STRING, dims: [ -1 ] } ]
            output [ { name: "OUTPUT_0", data_type: TYPE_STRING, dims: [ -1, -1 ] } ]
            ensemble_scheduling {
              step [
                {
                  model_name: "preprocessing"
                  model_version: -1
                  input_map { key: "QUERY" value: "INPUT_0" }
                  output_map { key: "INPUT_ID" value: "_INPUT_ID" }
                  output_map { key: "REQUEST_INPUT_LEN" value: "_REQUEST_INPUT_LEN" }
                }
              ]
            }
            instance_group [ { count: 2, kind: KIND_GPU, gpus: [ 0, 1 ] } ]
            model_warmup [
              {
                name: "w"
                batch_size: 1
                inputs { key: "INPUT_0" value: { data_type: TYPE_STRING dims: [ 1 ] zero_data: true } }
              }
            ]
            """);

        Assert.Equal(expected, parsed);
    }

    /// <summary>Builds random ModelConfigs that touch every field kind: scalars of each type, enums, oneofs, maps, nesting.</summary>
    private sealed class ConfigGenerator(Random random)
    {
        private const string Alphabet = "abcXYZ019 _-./\"'\\\n\t\r#{}[]<>:;,é✓😀\0\u007f";

        public ModelConfig Config()
        {
            var config = new ModelConfig
            {
                Name = Text(),
                Platform = Maybe() ? Text() : "",
                Backend = Text(),
                Runtime = Maybe() ? Text() : "",
                MaxBatchSize = Int(),
                DefaultModelFilename = Text(),
            };
            if (Maybe())
            {
                config.VersionPolicy = random.Next(3) switch
                {
                    0 => new ModelVersionPolicy { Latest = new() { NumVersions = (uint)random.Next(0, 5) } },
                    1 => new ModelVersionPolicy { All = new() },
                    _ => new ModelVersionPolicy { Specific = new() { Versions = { Longs() } } },
                };
            }

            for (int i = random.Next(4); i > 0; i--)
            {
                var input = new ModelInput
                {
                    Name = Text(),
                    DataType = Enum<DataType>(15),
                    Format = Enum<ModelInput.Types.Format>(3),
                    Dims = { Longs() },
                    IsShapeTensor = Maybe(),
                    AllowRaggedBatch = Maybe(),
                    Optional = Maybe(),
                    IsNonLinearFormatIo = Maybe(),
                };
                if (Maybe())
                {
                    input.Reshape = new ModelTensorReshape { Shape = { Longs() } };
                }

                config.Input.Add(input);
            }

            for (int i = random.Next(3); i > 0; i--)
            {
                config.Output.Add(new ModelOutput { Name = Text(), DataType = Enum<DataType>(15), Dims = { Longs() }, LabelFilename = Text(), IsShapeTensor = Maybe() });
            }

            if (Maybe())
            {
                config.BatchInput.Add(new BatchInput { Kind = Enum<BatchInput.Types.Kind>(6), TargetName = { Text(), Text() }, DataType = DataType.TypeInt32, SourceInput = { Text() } });
                config.BatchOutput.Add(new BatchOutput { TargetName = { Text() }, SourceInput = { Text() } });
            }

            if (Maybe())
            {
                config.Optimization = new ModelOptimizationPolicy
                {
                    Priority = Enum<ModelOptimizationPolicy.Types.ModelPriority>(3),
                    InputPinnedMemory = new() { Enable = Maybe() },
                    GatherKernelBufferThreshold = UInt(),
                    EagerBatching = Maybe(),
                };
            }

            switch (random.Next(4))
            {
                case 0:
                    config.DynamicBatching = new ModelDynamicBatching
                    {
                        PreferredBatchSize = { Int(), Int() },
                        MaxQueueDelayMicroseconds = ULong(),
                        PreserveOrdering = Maybe(),
                        PriorityLevels = ULong(),
                        DefaultPriorityLevel = ULong(),
                        DefaultQueuePolicy = QueuePolicy(),
                        PriorityQueuePolicy = { [ULong()] = QueuePolicy(), [1] = QueuePolicy() },
                    };
                    break;
                case 1:
                    config.SequenceBatching = new ModelSequenceBatching
                    {
                        MaxSequenceIdleMicroseconds = ULong(),
                        ControlInput =
                        {
                            new ModelSequenceBatching.Types.ControlInput
                            {
                                Name = Text(),
                                Control =
                                {
                                    new ModelSequenceBatching.Types.Control
                                    {
                                        Kind = Enum<ModelSequenceBatching.Types.Control.Types.Kind>(4),
                                        Int32FalseTrue = { Int(), Int() },
                                        Fp32FalseTrue = { Float(), Float() },
                                        BoolFalseTrue = { Maybe(), true },
                                        DataType = Enum<DataType>(15),
                                    },
                                },
                            },
                        },
                        IterativeSequence = Maybe(),
                    };
                    if (Maybe())
                    {
                        config.SequenceBatching.Direct = new() { MaxQueueDelayMicroseconds = ULong(), MinimumSlotUtilization = Float() };
                    }
                    else
                    {
                        config.SequenceBatching.Oldest = new() { MaxCandidateSequences = Int(), PreferredBatchSize = { Int() }, PreserveOrdering = Maybe() };
                    }

                    break;
                case 2:
                    config.EnsembleScheduling = new ModelEnsembling
                    {
                        Step = { new ModelEnsembling.Types.Step { ModelName = Text(), ModelVersion = Long(), InputMap = { [Text()] = Text() }, OutputMap = { [Text()] = Text() }, ModelNamespace = Text() } },
                        MaxInflightRequests = ULong(),
                    };
                    break;
            }

            for (int i = random.Next(3); i > 0; i--)
            {
                config.InstanceGroup.Add(new ModelInstanceGroup
                {
                    Name = Text(),
                    Kind = Enum<ModelInstanceGroup.Types.Kind>(4),
                    Count = Int(),
                    RateLimiter = Maybe() ? new ModelRateLimiter { Resources = { new ModelRateLimiter.Types.Resource { Name = Text(), Global = Maybe(), Count = UInt() } }, Priority = UInt() } : null,
                    Gpus = { Int(), Int() },
                    SecondaryDevices = { new ModelInstanceGroup.Types.SecondaryDevice { DeviceId = Long() } },
                    Profile = { Text() },
                    Passive = Maybe(),
                    HostPolicy = Text(),
                });
            }

            for (int i = random.Next(4); i > 0; i--)
            {
                config.CcModelFilenames[Text()] = Text();
                config.MetricTags[Text()] = Text();
                config.Parameters[Text()] = new ModelParameter { StringValue = Text() };
            }

            if (Maybe())
            {
                var warmupInput = new ModelWarmup.Types.Input { DataType = Enum<DataType>(15), Dims = { Longs() } };
                switch (random.Next(3))
                {
                    case 0: warmupInput.ZeroData = Maybe(); break;
                    case 1: warmupInput.RandomData = Maybe(); break;
                    default: warmupInput.InputDataFile = Text(); break;
                }

                config.ModelWarmup.Add(new ModelWarmup { Name = Text(), BatchSize = UInt(), Inputs = { [Text()] = warmupInput }, Count = UInt() });
            }

            if (Maybe())
            {
                config.ModelOperations = new ModelOperations { OpLibraryFilename = { Text(), Text() } };
                config.ModelTransactionPolicy = new ModelTransactionPolicy { Decoupled = Maybe() };
                config.ModelRepositoryAgents = new ModelRepositoryAgents { Agents = { new ModelRepositoryAgents.Types.Agent { Name = Text(), Parameters = { [Text()] = Text() } } } };
                config.ResponseCache = new ModelResponseCache { Enable = Maybe() };
            }

            return config;
        }

        private ModelQueuePolicy QueuePolicy() => new()
        {
            TimeoutAction = Enum<ModelQueuePolicy.Types.TimeoutAction>(2),
            DefaultTimeoutMicroseconds = ULong(),
            AllowTimeoutOverride = Maybe(),
            MaxQueueSize = UInt(),
        };

        private bool Maybe() => random.Next(2) == 1;

        private T Enum<T>(int count) where T : struct, System.Enum => (T)(object)random.Next(count);

        private string Text()
        {
            var builder = new StringBuilder();
            for (int i = random.Next(0, 12); i > 0; i--)
            {
                int index = random.Next(Alphabet.Length);
                builder.Append(char.IsHighSurrogate(Alphabet[index]) ? Alphabet.AsSpan(index, 2) : char.IsLowSurrogate(Alphabet[index]) ? "x" : Alphabet.AsSpan(index, 1));
            }

            return builder.ToString();
        }

        private int Int() => random.Next(4) switch { 0 => int.MinValue, 1 => int.MaxValue, _ => random.Next(int.MinValue, int.MaxValue) };

        private uint UInt() => random.Next(3) == 0 ? uint.MaxValue : (uint)random.NextInt64(0, uint.MaxValue);

        private long Long() => random.Next(4) switch { 0 => long.MinValue, 1 => long.MaxValue, 2 => -1, _ => random.NextInt64(long.MinValue, long.MaxValue) };

        private ulong ULong() => random.Next(3) == 0 ? ulong.MaxValue : (ulong)random.NextInt64(0, long.MaxValue) * 2;

        private long[] Longs() => [.. Enumerable.Range(0, random.Next(4)).Select(_ => Long())];

        private float Float() => random.Next(4) switch
        {
            0 => float.PositiveInfinity,
            1 => float.NegativeInfinity,
            2 => float.Epsilon,
            _ => (float)((random.NextDouble() - 0.5) * Math.Pow(10, random.Next(-30, 30))),
        };
    }
}
