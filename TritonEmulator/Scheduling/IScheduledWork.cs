namespace TritonEmulator.Scheduling;

/// <summary>
/// One request as the scheduler sees it: a number of rows that generate in lock step. The model
/// behind it writes its own responses; the scheduler only decides when it runs.
/// </summary>
internal interface IScheduledWork
{
    /// <summary>Rows (batch elements) the request occupies in a batch.</summary>
    int BatchSize { get; }

    /// <summary>Prompt tokens over all rows (prefill cost).</summary>
    int PromptTokens { get; }

    /// <summary>
    /// Called once, when the request is admitted into a batch: the prompt tokens its prefill must
    /// compute. An engine with a prefix KV cache returns only the tokens not already cached.
    /// </summary>
    int BeginPrefill() => PromptTokens;

    /// <summary>KV-cache tokens the request reserves while it runs (prompt + output per row).</summary>
    long KvTokens { get; }

    /// <summary>Responses written so far (the index of the next one).</summary>
    int ResponsesWritten { get; }

    /// <summary>
    /// Produces the next token of every unfinished row and writes the response(s) for it.
    /// Returns true when the request has ended and its final response is written.
    /// </summary>
    bool Step();

    /// <summary>Ends the request with an error (queue timeout, cancellation, shutdown).</summary>
    void Fail(InferenceException error);
}

/// <summary>
/// Optional, for a model that runs one forward pass per step for all its running requests (vLLM's
/// continuous batching): the scheduler calls <see cref="Execute"/> once per step with the active
/// works, then each work's <see cref="IScheduledWork.Step"/> consumes its share of the result.
/// The scheduler counts one execution per call, whatever the number of works.
/// </summary>
internal interface IBatchedExecution
{
    /// <summary>
    /// Runs the step's forward pass for <paramref name="works"/> (in order). Throwing fails every one of them.
    /// </summary>
    void Execute(IReadOnlyList<IScheduledWork> works);
}

/// <summary>What the scheduler reports, for statistics and metrics; it knows nothing of protocols.</summary>
internal interface ISchedulerObserver
{
    void QueueChanged(int pendingRequests);

    /// <summary>
    /// One model execution of <paramref name="batchSize"/> rows, of which <paramref name="inferences"/>
    /// are requests' rows counted for the first time (a request that runs in several steps counts once).
    /// </summary>
    void Executed(int batchSize, int inferences, TimeSpan compute);

    void ResponseWritten(int index, TimeSpan compute);

    void Succeeded(int batchSize, TimeSpan total, TimeSpan queue, TimeSpan compute);

    void Failed(FailureReason reason, TimeSpan total, int responseIndex);

    void KvTokensChanged(long inUse, int activeSequences);
}
