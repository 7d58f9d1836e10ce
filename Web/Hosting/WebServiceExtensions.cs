using Microsoft.Extensions.Options;
using Radzen;
using Web.Chat;
using Web.Components;
using Web.Conversations;
using Web.Markdown;

namespace Web.Hosting;

public static class WebServiceExtensions
{
    /// <summary>Blazor (interactive server), the gateway client and the chat's services.</summary>
    public static WebApplicationBuilder AddChatServices(this WebApplicationBuilder builder)
    {
        // Serve the framework's and the project's static web assets (blazor.web.js, chat.js)
        // from the build output in every environment: the AppHost starts the project without a
        // launch profile, so it is not "Development" there. Published output has them in wwwroot.
        builder.WebHost.UseStaticWebAssets();

        builder.Services.AddRazorComponents()
            .AddInteractiveServerComponents()
            // Conversations come back from localStorage through the circuit; allow long ones.
            .AddHubOptions(hub => hub.MaximumReceiveMessageSize = 4 * 1024 * 1024);

        builder.Services.AddOptions<GatewayClientOptions>()
            .BindConfiguration(GatewayClientOptions.SectionName)
            .PostConfigure<IConfiguration>((options, configuration) =>
            {
                if (string.IsNullOrWhiteSpace(options.Address))
                {
                    options.Address = configuration[GatewayClientOptions.DiscoveryKey] ?? "";
                }
                if (string.IsNullOrWhiteSpace(options.RestAddress))
                {
                    options.RestAddress = configuration[GatewayClientOptions.RestDiscoveryKey] ?? "";
                }
            })
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<GatewayClientOptions>, GatewayClientOptionsValidator>();

        // The usage page (Components/Pages/Usage.razor): Radzen's charts and the gateway's REST admin API.
        builder.Services.AddRadzenComponents();
        builder.Services.AddHttpClient<Web.Admin.GatewayAdminClient>(static (provider, http) =>
        {
            var configuration = provider.GetRequiredService<IConfiguration>();
            http.BaseAddress = new Uri(configuration["GatewayAdmin:Address"] ?? configuration["services:gateway:http:0"] ?? configuration["GATEWAY_HTTP"] ?? "http://localhost:5080");
            http.Timeout = TimeSpan.FromSeconds(30);
        });

        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<GatewayRestChat>();
        builder.Services.AddSingleton<IChatBackend, GatewayChatBackend>();
        builder.Services.AddSingleton<AnswerStreamer>();
        builder.Services.AddSingleton<IMarkdownRenderer, MarkdownRenderer>();
        builder.Services.AddScoped<ConversationStore>();
        builder.Services.AddScoped<ChatInterop>();
        return builder;
    }

    /// <summary>Static assets, the Blazor endpoints and the health probes.</summary>
    public static WebApplication MapChatApp(this WebApplication app)
    {
        if (!app.Environment.IsDevelopment())
        {
            app.UseExceptionHandler("/Error", createScopeForErrors: true);
        }
        app.UseStatusCodePagesWithReExecute("/not-found", createScopeForStatusCodePages: true);
        app.UseAntiforgery();
        app.MapStaticAssets();
        app.MapRazorComponents<App>().AddInteractiveServerRenderMode();
        app.MapDefaultEndpoints();
        return app;
    }
}
