using Benchmarks;
using Benchmarks.Hosting;

// `--serve gateway|emulator ...`: this process is one component (started by the harness itself).
if (args.Length > 0 && args[0] == "--serve")
{
    return await ComponentHost.ServeAsync(args[1..]);
}

var options = BenchmarkOptions.Parse(args);
if (options is null)
{
    Console.WriteLine(BenchmarkOptions.Usage);
    return 2;
}
if (options.LlamaWriteModelTo is { } models)
{
    Benchmarks.Llama.LlamaShapeRepository.WriteModelFolder(models, options.LlamaThreads, Console.Out);
    return 0;
}
var report = await BenchmarkRunner.RunAsync(options, Console.Out, CancellationToken.None);
return report.Errors == 0 ? 0 : 1;
