using Gateway.Hosting;

// The gateway: OpenAI REST + SSE (Gateway:RestPort, 5080) and gRPC (Gateway:GrpcPort, 5081) over Triton.
// Everything is registered in Hosting/GatewayServiceCollectionExtensions.cs.
var app = GatewayApplication.Build(args);

app.Run();
