var builder = DistributedApplication.CreateBuilder(args);

var triton = builder.AddTriton("triton");

var gateway = builder.AddGateway("gateway", triton);

builder.AddWeb("web", gateway);

builder.AddGkePublishing();

builder.Build().Run();
