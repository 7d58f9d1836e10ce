using Microsoft.Extensions.Logging.Abstractions;
using Triton.Inference;
using TritonEmulator.Models;
using TritonEmulator.Models.Vllm;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Tests.Models.Vllm;

public sealed class VllmModelLoaderTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("vllm-loader-").FullName;

    [Theory]
    [InlineData("257")]
    [InlineData("0")]
    public void MaxContexts_OutsideLlamaCppsSequenceRange_IsALoadErrorNamingTheKey(string maxContexts)
    {
        var version = Directory.CreateDirectory(Path.Combine(_directory, "tiny", "1")).FullName;
        TinyLlama.Create().WriteGguf(Path.Combine(version, "tiny.gguf"));
        File.WriteAllText(Path.Combine(version, VllmModelLoader.EngineArgsFile), """{"model": "tiny.gguf"}""");
        var config = new ModelConfig { Name = "tiny", Backend = VllmModel.BackendName };
        config.Parameters[VllmModel.MaxContextsParameter] = new ModelParameter { StringValue = maxContexts };
        var definition = new ModelDefinition("tiny", config, [1], "READY", "", Path.Combine(_directory, "tiny"));

        var error = Assert.Throws<ModelLoadException>(() => new VllmModelLoader(NullLoggerFactory.Instance).Load(definition, config));

        Assert.Contains("'emulator_max_contexts'", error.Message);
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);
}
