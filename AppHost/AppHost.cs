var builder = DistributedApplication.CreateBuilder(args);

var triton = builder.AddTritonReplicas("triton");

var gateway = builder.AddGateway("gateway", triton[0])
    .WithTritonReplicas(triton);

builder.AddQuotaStore("redis", gatewayName: "gateway");

builder.AddLedgerDatabase("postgres", gatewayName: "gateway");

builder.AddWeb("web", gateway);

builder.AddGkePublishing();

builder.Build().Run();
