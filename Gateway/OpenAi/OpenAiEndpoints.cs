namespace Gateway.OpenAi;

public static class OpenAiEndpoints
{
    /// <summary>The gateway's own time for a request, not spent waiting on Triton (for SSE: up to the first token).</summary>
    public const string OverheadHeader = "x-gateway-overhead-duration-ms";

    /// <summary>Maps <c>/v1/chat/completions</c>, <c>/v1/completions</c>, <c>/v1/models</c> and <c>/v1/models/{id}</c>.</summary>
    public static IEndpointRouteBuilder MapOpenAiApi(this IEndpointRouteBuilder endpoints)
    {
        // Singletons resolved once here, not bound per request: a handler parameter from DI would open
        // the request's service scope (its dictionaries) on every call.
        var completions = endpoints.ServiceProvider.GetRequiredService<OpenAiCompletionsHandler>();
        var models = endpoints.ServiceProvider.GetRequiredService<OpenAiModelsHandler>();
        var v1 = endpoints.MapGroup("/v1").WithTags("OpenAI");
        v1.MapPost("/chat/completions", (HttpContext context) => completions.GenerateAsync(context, chat: true))
            .WithName("CreateChatCompletion");
        v1.MapPost("/completions", (HttpContext context) => completions.GenerateAsync(context, chat: false))
            .WithName("CreateCompletion");
        v1.MapGet("/models", (HttpContext context) => models.ListModelsAsync(context))
            .WithName("ListModels");
        v1.MapGet("/models/{**id}", (HttpContext context, string id) => models.GetModelAsync(context, id))
            .WithName("RetrieveModel");
        return endpoints;
    }

    /// <summary>The handlers behind <see cref="MapOpenAiApi"/>: each stateless, one singleton per endpoint shape.</summary>
    internal static IServiceCollection AddOpenAiApi(this IServiceCollection services)
    {
        services.AddSingleton<OpenAiInterruptions>();
        services.AddSingleton<OpenAiModelsHandler>();
        services.AddSingleton<OpenAiUnaryHandler>();
        services.AddSingleton<OpenAiStreamHandler>();
        services.AddSingleton<OpenAiCompletionsHandler>();
        return services;
    }
}
