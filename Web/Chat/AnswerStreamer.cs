using Web.Conversations;

namespace Web.Chat;

/// <summary>How an answer ended.</summary>
public sealed record AnswerOutcome(TurnState State, ChatError? Error, bool ReceivedText);

/// <summary>
/// Pumps one gateway stream into a growing <see cref="ChatTurn"/>. Runs off the circuit's
/// synchronization context (every await uses <c>ConfigureAwait(false)</c>), so a fast stream
/// never blocks the UI: the turn's <see cref="ChatTurn.Changed"/> lets the message component
/// coalesce renders.
/// </summary>
public sealed class AnswerStreamer(IChatBackend backend, TimeProvider time)
{
    public async Task<AnswerOutcome> StreamAsync(ChatPrompt prompt, ChatTurn answer, CancellationToken cancellationToken)
    {
        var started = time.GetTimestamp();
        long firstToken = 0;
        var completionTokens = 0;
        AnswerFinal? final = null;
        try
        {
            await foreach (var item in backend.StreamChatAsync(prompt, cancellationToken).ConfigureAwait(false))
            {
                switch (item)
                {
                    case AnswerDelta delta:
                        if (firstToken == 0 && delta.Text.Length > 0)
                        {
                            firstToken = time.GetTimestamp();
                        }
                        completionTokens += delta.TokenCount;
                        answer.Append(delta.Text);
                        break;
                    case AnswerToolCallDelta call:
                        if (firstToken == 0)
                        {
                            firstToken = time.GetTimestamp();
                        }
                        answer.AppendToolCall(call.Index, call.Id, call.Name, call.Arguments);
                        break;
                    case AnswerFinal end:
                        final = end;
                        break;
                }
            }
            answer.Finish(TurnState.Complete, Stats(prompt, started, firstToken, completionTokens, final), null);
            return new AnswerOutcome(TurnState.Complete, null, firstToken != 0);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            answer.Finish(TurnState.Stopped, Stats(prompt, started, firstToken, completionTokens, final), "Stopped");
            return new AnswerOutcome(TurnState.Stopped, null, firstToken != 0);
        }
        catch (ChatException exception)
        {
            answer.Finish(TurnState.Failed, firstToken == 0 ? null : Stats(prompt, started, firstToken, completionTokens, final), exception.Error.Title);
            return new AnswerOutcome(TurnState.Failed, exception.Error, firstToken != 0);
        }
    }

    private AnswerStats Stats(ChatPrompt prompt, long started, long firstToken, int completionTokens, AnswerFinal? final)
    {
        var ended = time.GetTimestamp();
        var measuredTtft = firstToken == 0 ? 0 : time.GetElapsedTime(started, firstToken).TotalMilliseconds;
        var tokens = final?.CompletionTokens is > 0 ? final.CompletionTokens : completionTokens;
        var generating = firstToken == 0 ? TimeSpan.Zero : time.GetElapsedTime(firstToken, ended);
        return new AnswerStats
        {
            TimeToFirstTokenMs = final?.TimeToFirstTokenMs is > 0 ? final.TimeToFirstTokenMs : measuredTtft,
            // The first token's time belongs to TTFT; speed counts the tokens after it.
            TokensPerSecond = tokens > 1 && generating > TimeSpan.Zero ? (tokens - 1) / generating.TotalSeconds : 0,
            PromptTokens = final?.PromptTokens ?? 0,
            CompletionTokens = tokens,
            FinishReason = final?.FinishReason ?? "",
            Model = final?.Model is { Length: > 0 } model ? model : prompt.Model,
        };
    }
}
