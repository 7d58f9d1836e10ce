using Gateway.Auth;
using Gateway.Errors;
using Gateway.Generation;
using Gateway.Triton.Contracts;
using Microsoft.Extensions.Options;
using static Gateway.OpenAi.OpenAiShapes;

namespace Gateway.OpenAi;

/// <summary>
/// A completion with <c>stream: true</c>: SSE events as the tokens come (keep-alive comments from
/// the start), the finish chunk, usage when asked for, then <c>[DONE]</c>; a failure after the 200
/// is the final error event.
/// </summary>
internal sealed class OpenAiStreamHandler(
    IGenerationService generation,
    IOptions<SseOptions> sseOptions,
    TimeProvider time,
    OpenAiInterruptions interruptions)
{
    public async Task StreamAsync(HttpContext context, GenerationRequest request, Caller caller, bool chat, bool includeUsage, CancellationToken cancellationToken)
    {
        // Keep-alive comments start now: a long prompt's wait for its first token is not silence to a proxy.
        var sse = new SseResponse(context, sseOptions.Value, time);
        await using (sse.ConfigureAwait(false))
        {
            GenerationStream stream;
            try
            {
                stream = await generation.StartAsync(request, caller, cancellationToken).ConfigureAwait(false);
            }
            catch (GatewayException ex)
            {
                await sse.FailAsync(ex).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException ex) when (cancellationToken.IsCancellationRequested || ex is ClientDisconnectedException)
            {
                if (interruptions.ShutdownCause(context) is { } shutdown)
                {
                    await sse.FailAsync(shutdown).ConfigureAwait(false);
                }
                else
                {
                    interruptions.ClientCancelled(context, null, 0);
                }
                return;
            }
            catch (Exception ex)
            {
                await sse.FailAsync(interruptions.Unexpected(context, ex)).ConfigureAwait(false);
                return;
            }
            await using (stream.ConfigureAwait(false))
            {
                try
                {
                    if (chat && ToolAnswers.HasToolCalling(request))
                    {
                        await WriteToolEventsAsync(sse, stream, request, includeUsage, cancellationToken).ConfigureAwait(false);
                    }
                    else
                    {
                        await WriteEventsAsync(sse, stream, chat, includeUsage, cancellationToken).ConfigureAwait(false);
                    }
                }
                catch (GatewayException ex)
                {
                    // The 200 is gone: the error is the final event, then [DONE] (as vLLM does); the
                    // SDKs raise it. The response then ends normally: an abort would make TCP drop it.
                    await sse.FailAsync(ex).ConfigureAwait(false);
                }
                catch (OperationCanceledException ex) when (cancellationToken.IsCancellationRequested || ex is ClientDisconnectedException)
                {
                    if (interruptions.ShutdownCause(context) is { } shutdown)
                    {
                        stream.EndedWith(shutdown);
                        await sse.FailAsync(shutdown).ConfigureAwait(false);
                    }
                    else
                    {
                        // The client went away; disposing the stream cancels Triton.
                        interruptions.ClientCancelled(context, stream.Id, stream.CompletionTokens);
                    }
                }
                catch (Exception ex)
                {
                    // Never a reset connection: the client gets an error it can read.
                    var failure = interruptions.Unexpected(context, ex);
                    stream.EndedWith(failure);
                    await sse.FailAsync(failure).ConfigureAwait(false);
                }
            }
        }
    }

    private static async Task WriteEventsAsync(SseResponse sse, GenerationStream stream, bool chat, bool includeUsage, CancellationToken cancellationToken)
    {
        await sse.StartAsync(stream.Id, Milliseconds(stream.Overhead), cancellationToken).ConfigureAwait(false);
        // One chunk object per stream, mutated per event: no per-token object graphs.
        var chatDelta = new ChunkDelta();
        var chatChoice = new ChunkChoice { Index = 0, Delta = chatDelta };
        var chatChunk = new ChatCompletionChunk { Id = stream.Id, Created = stream.Created, Model = stream.Model, Choices = [chatChoice] };
        var textChoice = new TextChoice { Index = 0, Text = "" };
        var textChunk = new TextCompletion { Id = stream.Id, Created = stream.Created, Model = stream.Model, Choices = [textChoice] };
        if (chat)
        {
            chatDelta.Role = "assistant";
            chatDelta.Content = "";
            await sse.WriteAsync(chatChunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
            chatDelta.Role = null;
        }
        // The chunk's bytes around its text, serialised once: per token only the text is written.
        DeltaFrame? frame;
        if (chat)
        {
            chatDelta.Content = SseWriter.TextPlaceholder;
            frame = SseWriter.CreateFrame(chatChunk, OpenAiJsonContext.Default.ChatCompletionChunk);
        }
        else
        {
            textChoice.Text = SseWriter.TextPlaceholder;
            frame = SseWriter.CreateFrame(textChunk, OpenAiJsonContext.Default.TextCompletion);
        }
        await foreach (var delta in stream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            if (delta.Chars.IsEmpty)
            {
                continue;
            }
            if (frame is not null)
            {
                await sse.WriteDeltaAsync(frame, delta.Chars, cancellationToken).ConfigureAwait(false);
            }
            else if (chat)
            {
                chatDelta.Content = delta.Text;
                await sse.WriteAsync(chatChunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                textChoice.Text = delta.Text;
                await sse.WriteAsync(textChunk, OpenAiJsonContext.Default.TextCompletion, cancellationToken).ConfigureAwait(false);
            }
        }
        var finish = FinishReasonText(stream.FinishReason);
        if (chat)
        {
            chatDelta.Content = null;
            chatChoice.FinishReason = finish;
            await sse.WriteAsync(chatChunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
            if (includeUsage)
            {
                chatChunk.Choices = [];
                chatChunk.Usage = ToUsage(stream);
                await sse.WriteAsync(chatChunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
            }
        }
        else
        {
            textChoice.Text = "";
            textChoice.FinishReason = finish;
            await sse.WriteAsync(textChunk, OpenAiJsonContext.Default.TextCompletion, cancellationToken).ConfigureAwait(false);
            if (includeUsage)
            {
                textChunk.Choices = [];
                textChunk.Usage = ToUsage(stream);
                await sse.WriteAsync(textChunk, OpenAiJsonContext.Default.TextCompletion, cancellationToken).ConfigureAwait(false);
            }
        }
        // [DONE] is flushed before the stream's bookkeeping (Triton's close, quota, metrics) runs at dispose.
        await sse.CompleteAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A chat stream with tools: content deltas as usual; tool calls as <c>delta.tool_calls</c>
    /// (the first piece of a call with its index, id, type and name, then its arguments). A named
    /// choice streams the constrained arguments token by token; a required choice and the model's
    /// own (auto) calls are read by the parser and sent as each call's JSON completes.
    /// </summary>
    private static async Task WriteToolEventsAsync(SseResponse sse, GenerationStream stream, GenerationRequest request, bool includeUsage, CancellationToken cancellationToken)
    {
        await sse.StartAsync(stream.Id, Milliseconds(stream.Overhead), cancellationToken).ConfigureAwait(false);
        var tools = request.Tools!;
        var delta = new ChunkDelta { Role = "assistant" };
        var choice = new ChunkChoice { Index = 0, Delta = delta };
        var chunk = new ChatCompletionChunk { Id = stream.Id, Created = stream.Created, Model = stream.Model, Choices = [choice] };
        var calls = 0;
        if (tools.Mode == Structured.ToolChoiceMode.Named)
        {
            delta.ToolCalls = [new ToolCallDeltaJson { Index = 0, Id = ToolAnswers.CallId(stream.Id, 0), Type = "function", Function = new FunctionDeltaJson { Name = tools.Function, Arguments = "" } }];
            await sse.WriteAsync(chunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
            delta.Role = null;
            // Per token only the argument text is written into a frame serialised once.
            delta.ToolCalls = [new ToolCallDeltaJson { Index = 0, Function = new FunctionDeltaJson { Arguments = SseWriter.TextPlaceholder } }];
            var frame = SseWriter.CreateFrame(chunk, OpenAiJsonContext.Default.ChatCompletionChunk)
                ?? throw new InvalidOperationException("the tool-call delta frame has no single placeholder");
            await foreach (var piece in stream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                if (!piece.Chars.IsEmpty)
                {
                    await sse.WriteDeltaAsync(frame, piece.Chars, cancellationToken).ConfigureAwait(false);
                }
            }
            delta.ToolCalls = null;
            choice.FinishReason = stream.FinishReason == FinishReason.Length ? "length" : "stop";
        }
        else
        {
            delta.Content = "";
            await sse.WriteAsync(chunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
            delta.Role = null;
            var parser = tools.Mode == Structured.ToolChoiceMode.Required
                ? new Structured.ToolCallStreamParser(Structured.ToolCallParsers.Mistral, startInCalls: true)
                : new Structured.ToolCallStreamParser(stream.ToolCallParser);
            var events = new List<Structured.ToolCallEvent>();
            await foreach (var piece in stream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                parser.Push(piece.Chars.Span, events);
                calls = await WriteToolEventsAsync(sse, chunk, events, calls, cancellationToken).ConfigureAwait(false);
            }
            parser.Finish(events);
            calls = await WriteToolEventsAsync(sse, chunk, events, calls, cancellationToken).ConfigureAwait(false);
            delta.Content = null;
            delta.ToolCalls = null;
            choice.FinishReason = stream.FinishReason == FinishReason.Length ? "length" : calls > 0 ? "tool_calls" : "stop";
        }
        await sse.WriteAsync(chunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
        if (includeUsage)
        {
            chunk.Choices = [];
            chunk.Usage = ToUsage(stream);
            await sse.WriteAsync(chunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
        }
        await sse.CompleteAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes the parser's events: content as content deltas, each call as its header then its arguments.</summary>
    private static async Task<int> WriteToolEventsAsync(SseResponse sse, ChatCompletionChunk chunk, List<Structured.ToolCallEvent> events, int calls, CancellationToken cancellationToken)
    {
        var delta = chunk.Choices[0].Delta;
        foreach (var e in events)
        {
            if (e.Call is { } call)
            {
                delta.Content = null;
                delta.ToolCalls = [new ToolCallDeltaJson { Index = calls, Id = ToolAnswers.CallId(chunk.Id, calls), Type = "function", Function = new FunctionDeltaJson { Name = call.Name, Arguments = "" } }];
                await sse.WriteAsync(chunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
                delta.ToolCalls = [new ToolCallDeltaJson { Index = calls, Function = new FunctionDeltaJson { Arguments = call.Arguments } }];
                await sse.WriteAsync(chunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
                calls++;
            }
            else if (!string.IsNullOrEmpty(e.Content))
            {
                delta.ToolCalls = null;
                delta.Content = e.Content;
                await sse.WriteAsync(chunk, OpenAiJsonContext.Default.ChatCompletionChunk, cancellationToken).ConfigureAwait(false);
            }
        }
        events.Clear();
        delta.ToolCalls = null;
        delta.Content = null;
        return calls;
    }
}
