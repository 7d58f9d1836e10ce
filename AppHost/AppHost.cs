var builder = DistributedApplication.CreateBuilder(args);

var triton = builder.AddTritonReplicas("triton");

builder.AddGateway("gateway", triton[0])
    .WithTritonReplicas(triton);

builder.AddGkePublishing();

builder.Build().Run();
