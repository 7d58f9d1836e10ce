using System.Text;
using Gateway.Auth;
using Gateway.Errors;
using Gateway.Generation;
using static Gateway.OpenAi.OpenAiShapes;

namespace Gateway.OpenAi;

/// <summary>A completion without <c>stream</c>: the whole text, then one JSON answer with its usage.</summary>
internal sealed class OpenAiUnaryHandler(IGenerationService generation, OpenAiInterruptions interruptions)
{
    public async Task CompleteAsync(HttpContext context, GenerationRequest request, Caller caller, bool chat, CancellationToken cancellationToken)
    {
        GenerationStream stream;
        try
        {
            stream = await generation.StartAsync(request, caller, cancellationToken).ConfigureAwait(false);
        }
        catch (GatewayException ex)
        {
            await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
            return;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await interruptions.EndUnaryAsync(context, null).ConfigureAwait(false);
            return;
        }
        catch (Exception ex)
        {
            await OpenAiErrors.WriteAsync(context, interruptions.Unexpected(context, ex)).ConfigureAwait(false);
            return;
        }
        await using (stream.ConfigureAwait(false))
        {
            var text = new StringBuilder();
            try
            {
                await foreach (var delta in stream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
                {
                    text.Append(delta.Chars.Span);
                }
            }
            catch (GatewayException ex)
            {
                // Nothing was sent yet: a proper status.
                await OpenAiErrors.WriteAsync(context, ex).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                await interruptions.EndUnaryAsync(context, stream).ConfigureAwait(false);
                return;
            }
            catch (Exception ex)
            {
                var failure = interruptions.Unexpected(context, ex);
                stream.EndedWith(failure);
                await OpenAiErrors.WriteAsync(context, failure).ConfigureAwait(false);
                return;
            }
            var usage = ToUsage(stream);
            var finish = FinishReasonText(stream.FinishReason);
            var response = context.Response;
            response.Headers["x-request-id"] = stream.Id;
            response.Headers[OpenAiEndpoints.OverheadHeader] = Milliseconds(stream.Overhead);
            if (chat)
            {
                var body = new ChatCompletion
                {
                    Id = stream.Id,
                    Created = stream.Created,
                    Model = stream.Model,
                    Choices = [ChatAnswer(request, text.ToString(), stream)],
                    Usage = usage,
                };
                await response.WriteAsJsonAsync(body, OpenAiJsonContext.Default.ChatCompletion, cancellationToken: context.RequestAborted).ConfigureAwait(false);
            }
            else
            {
                var body = new TextCompletion
                {
                    Id = stream.Id,
                    Created = stream.Created,
                    Model = stream.Model,
                    Choices = [new TextChoice { Index = 0, Text = text.ToString(), FinishReason = finish }],
                    Usage = usage,
                };
                await response.WriteAsJsonAsync(body, OpenAiJsonContext.Default.TextCompletion, cancellationToken: context.RequestAborted).ConfigureAwait(false);
            }
            // The answer is complete before the stream's bookkeeping (Triton's close, quota, metrics) runs.
            await response.CompleteAsync().ConfigureAwait(false);
        }
    }

    private static ChatChoice ChatAnswer(GenerationRequest request, string text, GenerationStream stream)
    {
        var (content, calls, finish) = ToolAnswers.Shape(request, text, stream.FinishReason, stream.ToolCallParser, stream.Id);
        return new ChatChoice { Index = 0, Message = new AssistantMessage { Content = content, ToolCalls = calls }, FinishReason = finish };
    }
}
