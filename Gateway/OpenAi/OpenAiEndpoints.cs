namespace Gateway.OpenAi;

public static class OpenAiEndpoints
{
    /// <summary>The gateway's own time for a request, not spent waiting on Triton (for SSE: up to the first token).</summary>
    public const string OverheadHeader = "x-gateway-overhead-duration-ms";

    /// <summary>Maps <c>/v1/chat/completions</c>, <c>/v1/completions</c>, <c>/v1/models</c> and <c>/v1/models/{id}</c>.</summary>
    public static IEndpointRouteBuilder MapOpenAiApi(this IEndpointRouteBuilder endpoints)
    {
        // Singletons from the root provider, not bound from the request's services: a handler parameter from
        // DI would open the request's service scope (its dictionaries) on every call. Resolved at the first
        // request, so options validation still fails the start, not the mapping.
        var services = endpoints.ServiceProvider;
        OpenAiCompletionsHandler Completions() => services.GetRequiredService<OpenAiCompletionsHandler>();
        OpenAiModelsHandler Models() => services.GetRequiredService<OpenAiModelsHandler>();
        var v1 = endpoints.MapGroup("/v1").WithTags("OpenAI");
        v1.MapPost("/chat/completions", (HttpContext context) => Completions().GenerateAsync(context, chat: true))
            .WithName("CreateChatCompletion");
        v1.MapPost("/completions", (HttpContext context) => Completions().GenerateAsync(context, chat: false))
            .WithName("CreateCompletion");
        v1.MapGet("/models", (HttpContext context) => Models().ListModelsAsync(context))
            .WithName("ListModels");
        v1.MapGet("/models/{**id}", (HttpContext context, string id) => Models().GetModelAsync(context, id))
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
