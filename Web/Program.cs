using Web.Hosting;

var builder = WebApplication.CreateBuilder(args);

builder.AddServiceDefaults();
builder.AddChatServices();

var app = builder.Build();

app.MapChatApp();

app.Run();
