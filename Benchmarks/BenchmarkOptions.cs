using System.Globalization;

namespace Benchmarks;

/// <summary>Command-line options of the harness (see Benchmarks/README.md).</summary>
internal sealed record BenchmarkOptions
{
    /// <summary>The default scenarios (the gateway on emulated FasterTransformer models).</summary>
    public static readonly string[] AllScenarios = ["rates", "streams", "idle", "soak"];

    /// <summary>Real llama.cpp speed of a TinyLlama-1.1B-shaped model; minutes and ~3 GB of disk, so only when asked for.</summary>
    public const string LlamaScenario = "llama";

    /// <summary>Kills a replica, Redis and the gateway under load (real processes, ~1 minute); only when asked for.</summary>
    public const string FaultsScenario = Faults.FaultScenario.Name;

    /// <summary>The gateway next to nginx and Portkey on zero-cost backends (real processes, ~3 minutes); only when asked for.</summary>
    public const string PeersScenario = Peers.PeersScenario.Name;

    /// <summary>Prefix-aware vs load-only vs round-robin routing over two TRT-LLM replicas (real processes, ~3 minutes); only when asked for.</summary>
    public const string PrefixScenario = Prefix.PrefixScenario.Name;

    /// <summary>The usage ledger's cost and its PostgreSQL outage (real PostgreSQL, ~1 minute); only when asked for.</summary>
    public const string LedgerScenario = Ledger.LedgerScenario.Name;

    /// <summary>The cost per token of structured-output grammars on the TinyLlama-1.1B-shaped model (~3 minutes); only when asked for.</summary>
    public const string GrammarScenario = Llama.GrammarBenchmark.Name;

    public static readonly string[] KnownScenarios = [.. AllScenarios, LlamaScenario, FaultsScenario, PeersScenario, PrefixScenario, LedgerScenario, GrammarScenario];

    public const string Usage = """
        dotnet run -c Release --project Benchmarks -- [options]
          --scenarios rates,streams,idle,soak,llama,faults,peers,prefix,ledger,grammar   which scenarios (default: rates,streams,idle,soak;
                                'llama', 'faults', 'peers', 'prefix', 'ledger' and 'grammar' run only when named)
          --peers-baseline <Benchmarks.dll>  'peers': also measure the gateway of another build (e.g. main's)
          --peers-emulator-baseline <Benchmarks.dll>  'peers': also measure this gateway on the emulator of another build
          --prefix-rate <r>     'prefix': shared-prefix chat requests per second (default 20)
          --prefix-random-rate <r>  'prefix': no-reuse requests per second (default 6)
          --prefix-duration <s> 'prefix': measured seconds per phase (default 25)
          --ledger-rate <r>     'ledger': unary completions per second (default 1000)
          --duration <s>        seconds per measured phase of 'rates' and 'streams' (default 15)
          --rates <r1,r2,...>   request rates for 'rates' (default 100,200,400,800)
          --concurrency <n>     concurrent streams for 'streams' (default 1000)
          --idle-streams <n>    concurrent slow streams for 'idle' (default 10000)
          --soak <s>            soak duration in seconds (default 60)
          --max-tokens <n>      completion tokens per stream (default 64)
          --llama-tokens <n>    'llama': completion tokens per stream (default 128)
          --llama-prompt-words <n>  'llama': words in the prompt, one token each (default 180, ~200 tokens)
          --llama-repeats <n>   'llama': runs per measurement (default 4)
          --llama-threads <n>   'llama': llama.cpp threads, the model's emulator_threads (default 2)
          --llama-write-model <dir>  write the 'llama' scenario's model (TinyLlama-1.1B shape, Q4_K_M,
                                random weights) as a vLLM model folder into the model repository
                                <dir> (e.g. models), then exit: the local chat path at real size
          --in-process          host emulator and gateway in this process (no per-component RSS)
          --smoke               seconds-long run of every scenario at small sizes (CI)
          --output <file>       markdown report (default BENCHMARKS.md in the repository root)
          --notes <file>        hand-written analysis appended to the report (default
                                Benchmarks/NOTES.md when it exists; 'none' for no notes)
        """;

    public IReadOnlyList<string> Scenarios { get; init; } = AllScenarios;
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(15);
    public IReadOnlyList<int> Rates { get; init; } = [100, 200, 400, 800];
    public int Concurrency { get; init; } = 1000;
    public int IdleStreams { get; init; } = 10_000;
    public TimeSpan IdleStep { get; init; } = TimeSpan.FromSeconds(1);
    public int IdleTokens { get; init; } = 40;
    public TimeSpan Soak { get; init; } = TimeSpan.FromSeconds(60);
    public int SoakConcurrency { get; init; } = 200;
    public int MaxTokens { get; init; } = 64;
    public int LlamaTokens { get; init; } = 128;
    public int LlamaPromptWords { get; init; } = 180;
    public int LlamaRepeats { get; init; } = 4;
    public int LlamaThreads { get; init; } = 2;
    public int LedgerRate { get; init; } = 1000;

    /// <summary>When set: write the TinyLlama-1.1B-shaped Q4_K_M model folder into this model repository and run no benchmark.</summary>
    public string? LlamaWriteModelTo { get; init; }
    public double PrefixRate { get; init; } = 20;
    public double PrefixRandomRate { get; init; } = 6;
    public TimeSpan PrefixDuration { get; init; } = TimeSpan.FromSeconds(25);
    public bool InProcess { get; init; }
    public bool Smoke { get; init; }

    /// <summary>'peers': a Benchmarks.dll of another build whose gateway is measured in the same run (the "before" column).</summary>
    public string? PeersBaseline { get; init; }

    /// <summary>'peers': a Benchmarks.dll of another build whose emulator serves a second gateway of this build, interleaved (the emulator's "before" backend CPU).</summary>
    public string? PeersEmulatorBaseline { get; init; }
    public string? Output { get; init; }
    public string? Notes { get; init; }

    public static BenchmarkOptions? Parse(string[] args)
    {
        var options = new BenchmarkOptions();
        if (args.Contains("--smoke"))
        {
            options = Smoked(options);
        }
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
            switch (args[i])
            {
                case "--smoke": break;
                case "--scenarios": options = options with { Scenarios = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) }; break;
                case "--duration": options = options with { Duration = TimeSpan.FromSeconds(Int()) }; break;
                case "--rates": options = options with { Rates = [.. Next().Split(',').Select(r => int.Parse(r, CultureInfo.InvariantCulture))] }; break;
                case "--concurrency": options = options with { Concurrency = Int() }; break;
                case "--idle-streams": options = options with { IdleStreams = Int() }; break;
                case "--soak": options = options with { Soak = TimeSpan.FromSeconds(Int()) }; break;
                case "--max-tokens": options = options with { MaxTokens = Int() }; break;
                case "--llama-tokens": options = options with { LlamaTokens = Int() }; break;
                case "--llama-prompt-words": options = options with { LlamaPromptWords = Int() }; break;
                case "--llama-repeats": options = options with { LlamaRepeats = Int() }; break;
                case "--llama-threads": options = options with { LlamaThreads = Int() }; break;
                case "--ledger-rate": options = options with { LedgerRate = Int() }; break;
                case "--llama-write-model": options = options with { LlamaWriteModelTo = Next() }; break;
                case "--prefix-rate": options = options with { PrefixRate = double.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                case "--prefix-random-rate": options = options with { PrefixRandomRate = double.Parse(Next(), CultureInfo.InvariantCulture) }; break;
                case "--prefix-duration": options = options with { PrefixDuration = TimeSpan.FromSeconds(Int()) }; break;
                case "--in-process": options = options with { InProcess = true }; break;
                case "--peers-baseline": options = options with { PeersBaseline = Path.GetFullPath(Next()) }; break;
                case "--peers-emulator-baseline": options = options with { PeersEmulatorBaseline = Path.GetFullPath(Next()) }; break;
                case "--output": options = options with { Output = Next() }; break;
                case "--notes": options = options with { Notes = Next() }; break;
                case "-h" or "--help": return null;
                default: throw new ArgumentException($"unknown option {args[i]}\n{Usage}");
            }
        }
        foreach (var scenario in options.Scenarios)
        {
            if (!KnownScenarios.Contains(scenario))
            {
                throw new ArgumentException($"unknown scenario '{scenario}' (known: {string.Join(", ", KnownScenarios)})");
            }
        }
        return options;
    }

    /// <summary>Every scenario at a size that runs in seconds (the llama scenario on a tiny shape): for CI, where the numbers mean nothing.</summary>
    public static BenchmarkOptions Smoked(BenchmarkOptions options) => options with
    {
        Smoke = true,
        Duration = TimeSpan.FromSeconds(1),
        Rates = [20, 40],
        Concurrency = 20,
        IdleStreams = 100,
        IdleStep = TimeSpan.FromMilliseconds(200),
        IdleTokens = 3,
        Soak = TimeSpan.FromSeconds(2),
        SoakConcurrency = 10,
        MaxTokens = 16,
        LlamaTokens = 8,
        LlamaPromptWords = 20,
        LlamaRepeats = 1,
    };
}
