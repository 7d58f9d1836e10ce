using TritonEmulator.Hosting;

EmulatorApplication.Build(args).Run();
