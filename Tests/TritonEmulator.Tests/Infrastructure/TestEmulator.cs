using Gateway.Grpc.Tensors;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Triton.Inference;
using TritonEmulator.Hosting;
using TritonEmulator.Models;
using TritonEmulator.Scheduling;

namespace TritonEmulator.Tests.Infrastructure;

/// <summary>A real engine on loopback port 0 with models given in code, and a generated gRPC client.</summary>
internal sealed class TestEmulator : IAsyncDisposable
{
    private TestEmulator(WebApplication app, GrpcChannel channel, FakeTimeProvider? clock)
    {
        App = app;
        Channel = channel;
        Clock = clock;
        Endpoints = app.GetEndpoints();
        Client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        Server = app.Services.GetRequiredService<InferenceServer>();
    }

    public WebApplication App { get; }
    public GrpcChannel Channel { get; }
    public FakeTimeProvider? Clock { get; }
    public EmulatorEndpoints Endpoints { get; }
    public GRPCInferenceService.GRPCInferenceServiceClient Client { get; }
    internal InferenceServer Server { get; }

    public ModelScheduler Scheduler(string model) => Server.Find(model)!.Scheduler!;

    public static async Task<TestEmulator> StartAsync(IEnumerable<ModelConfig> models, FakeTimeProvider? clock = null, string? profile = null, string? repository = null)
    {
        var definitions = models.Select(static c => new ModelDefinition(c.Name, c, [1], "READY", "")).ToArray();
        var app = EmulatorApplication.Build([], builder =>
        {
            var settings = new Dictionary<string, string?>
            {
                ["Emulator:HttpPort"] = "0",
                ["Emulator:GrpcPort"] = "0",
                ["Emulator:MetricsPort"] = "0",
                ["Emulator:ListenAddress"] = "127.0.0.1",
                ["Emulator:Profile"] = profile,
                ["Emulator:ModelRepository"] = repository,
                ["Logging:LogLevel:Default"] = "Warning",
            };
            builder.Configuration.AddInMemoryCollection(settings);
            if (repository is null)
            {
                builder.Services.AddSingleton<IModelDefinitionSource>(new StaticModelDefinitionSource(definitions));
            }
            if (clock is not null)
            {
                builder.Services.AddSingleton<TimeProvider>(clock);
            }
        });
        await app.StartAsync();
        var channel = GrpcChannel.ForAddress(app.GetEndpoints().Grpc);
        return new TestEmulator(app, channel, clock);
    }

    /// <summary>Responses the engine has produced for a model (from its statistics).</summary>
    public ulong ResponsesProduced(string model)
    {
        var stats = Server.Find(model)!.Statistics!.Snapshot();
        ulong total = 0;
        foreach (var response in stats.ResponseStats.Values)
        {
            total += response.Success.Count;
        }
        return total;
    }

    /// <summary>
    /// Steps the fake clock to each timer the engine waits on, but only once the client has received
    /// every response produced so far, so that receive order and receive time equal production.
    /// </summary>
    public async Task RunClockUntilAsync(string model, StreamRecorder recorder, Func<bool> done)
    {
        var clock = Clock ?? throw new InvalidOperationException("no fake clock");
        var scheduler = Scheduler(model);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (!done())
        {
            timeout.Token.ThrowIfCancellationRequested();
            var changed = scheduler.WaitChangedAsync();
            var received = recorder.ChangedAsync();
            var wait = scheduler.CurrentWait;
            var now = clock.GetUtcNow();
            if ((ulong)recorder.ResponseCount >= ResponsesProduced(model) && wait.Until is { } until && until > now)
            {
                clock.Advance(until - now);
                continue;
            }
            await Task.WhenAny(changed, received, Task.Delay(50, timeout.Token));
        }
    }

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}

/// <summary>Reads a ModelStreamInfer call in the background and keeps every message with the fake time it arrived.</summary>
internal sealed class StreamRecorder : IAsyncDisposable
{
    private readonly object _gate = new();
    private readonly List<(ModelStreamInferResponse Message, DateTimeOffset At)> _messages = [];
    private readonly Task _reader;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public StreamRecorder(GRPCInferenceService.GRPCInferenceServiceClient client, TimeProvider? clock = null, CancellationToken cancellationToken = default)
    {
        Call = client.ModelStreamInfer(cancellationToken: cancellationToken);
        _reader = Task.Run(async () =>
        {
            try
            {
                await foreach (var message in Call.ResponseStream.ReadAllAsync())
                {
                    TaskCompletionSource changed;
                    lock (_gate)
                    {
                        _messages.Add((message, (clock ?? TimeProvider.System).GetUtcNow()));
                        changed = _changed;
                        _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
                    }
                    changed.TrySetResult();
                }
            }
            catch (RpcException exception) when (exception.StatusCode == StatusCode.Cancelled)
            {
            }
        });
    }

    public AsyncDuplexStreamingCall<ModelInferRequest, ModelStreamInferResponse> Call { get; }

    public Task SendAsync(ModelInferRequest request) => Call.RequestStream.WriteAsync(request);

    public IReadOnlyList<(ModelStreamInferResponse Message, DateTimeOffset At)> Messages
    {
        get
        {
            lock (_gate)
            {
                return [.. _messages];
            }
        }
    }

    public int ResponseCount => Messages.Count(static m => string.IsNullOrEmpty(m.Message.ErrorMessage));

    public Task ChangedAsync()
    {
        lock (_gate)
        {
            return _changed.Task;
        }
    }

    public List<ModelInferResponse> ResponsesFor(string id) =>
        [.. Messages.Where(m => string.IsNullOrEmpty(m.Message.ErrorMessage) && m.Message.InferResponse.Id == id).Select(static m => m.Message.InferResponse)];

    public string? ErrorFor(string id) =>
        Messages.FirstOrDefault(m => !string.IsNullOrEmpty(m.Message.ErrorMessage) && m.Message.InferResponse?.Id == id).Message?.ErrorMessage;

    public bool IsFinished(string id) =>
        ErrorFor(id) is not null || ResponsesFor(id).Any(static r => r.Parameters.TryGetValue("triton_final_response", out var p) && p.BoolParam);

    /// <summary>Waits (with a timeout) until <paramref name="condition"/> holds over the received messages.</summary>
    public async Task WaitUntilAsync(Func<StreamRecorder, bool> condition, int seconds = 20)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        while (!condition(this))
        {
            var changed = ChangedAsync();
            if (condition(this))
            {
                return;
            }
            await changed.WaitAsync(timeout.Token);
        }
    }

    public async Task CompleteAsync()
    {
        await Call.RequestStream.CompleteAsync();
        await _reader;
    }

    public async ValueTask DisposeAsync()
    {
        Call.Dispose();
        await _reader.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }
}
