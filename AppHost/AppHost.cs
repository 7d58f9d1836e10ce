var builder = DistributedApplication.CreateBuilder(args);

var triton = builder.AddTriton("triton");

builder.AddGateway("gateway", triton);
builder.AddQuotaStore("redis", gatewayName: "gateway");

builder.AddGkePublishing();

builder.Build().Run();
