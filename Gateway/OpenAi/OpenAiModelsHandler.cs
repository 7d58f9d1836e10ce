using Gateway.Auth;
using Gateway.Errors;
using Gateway.Models;

namespace Gateway.OpenAi;

/// <summary><c>/v1/models</c> and <c>/v1/models/{id}</c>: the catalogue's models the caller's key may use.</summary>
internal sealed class OpenAiModelsHandler(IApiKeyAuthenticator authenticator, IModelCatalog catalog, TimeProvider time)
{
    private readonly long _modelsCreated = time.GetUtcNow().ToUnixTimeSeconds();

    public async Task ListModelsAsync(HttpContext context)
    {
        Caller caller;
        try
        {
            caller = authenticator.AuthenticateRequest(context);
        }
        catch (GatewayException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
            return;
        }
        var data = new List<ModelCard>();
        foreach (var model in catalog.Models)
        {
            if (caller.MayUse(model.Id))
            {
                data.Add(ToCard(model));
            }
        }
        await context.Response.WriteAsJsonAsync(new ModelList { Data = data }, OpenAiJsonContext.Default.ModelList, cancellationToken: context.RequestAborted).ConfigureAwait(false);
    }

    public async Task GetModelAsync(HttpContext context, string id)
    {
        try
        {
            var caller = authenticator.AuthenticateRequest(context);
            if (!catalog.TryGet(id, out var model) || (caller.IsManaged && !caller.MayUse(id)))
            {
                throw new GatewayException(GatewayError.ModelNotFound, $"The model `{id}` does not exist.", "model", "model_not_found");
            }
            if (!caller.MayUse(id))
            {
                throw new GatewayException(GatewayError.PermissionDenied, $"The API key may not use the model `{id}`.", "model", "model_not_allowed");
            }
            await context.Response.WriteAsJsonAsync(ToCard(model), OpenAiJsonContext.Default.ModelCard, cancellationToken: context.RequestAborted).ConfigureAwait(false);
        }
        catch (GatewayException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
        }
    }

    private ModelCard ToCard(CatalogModel model) => new()
    {
        Id = model.Id,
        Created = _modelsCreated,
        OwnedBy = model.Options.OwnedBy,
        ContextWindow = model.Options.ContextWindow,
        MaxOutputTokens = model.Options.MaxOutputTokens,
    };
}
