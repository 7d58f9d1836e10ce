using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using TritonEmulator.Hosting;

namespace TritonEmulator.Tests.Hosting;

public sealed class EmulatorOptionsTests
{
    [Theory]
    [InlineData("Emulator:HttpPort", "70000", "Emulator:HttpPort")]
    [InlineData("Emulator:Profile", "h100-fast", "Emulator:Profile")]
    [InlineData("Emulator:ModelRepository", "/no/such/folder", "Emulator:ModelRepository")]
    public async Task BadConfiguration_FailsAtStart_NamingTheKey(string key, string value, string named)
    {
        // Kestrel reads the ports while the app is built, so the failure may come from Build or StartAsync.
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => BuildAndStartAsync(key, value));
        Assert.Contains(named, error.Message);
    }

    private static async Task BuildAndStartAsync(string key, string value)
    {
        var app = EmulatorApplication.Build([], builder => builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Emulator:HttpPort"] = "0",
            ["Emulator:GrpcPort"] = "0",
            ["Emulator:MetricsPort"] = "0",
            ["Emulator:ListenAddress"] = "127.0.0.1",
            [key] = value,
        }));
        await using (app)
        {
            await app.StartAsync();
            await app.StopAsync();
        }
    }
}
