using System.Text.Json;
using System.Text.Json.Serialization;

namespace Web.Conversations;

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(Conversation))]
[JsonSerializable(typeof(List<ConversationSummary>))]
[JsonSerializable(typeof(ChatSettings))]
internal sealed partial class ConversationJsonContext : JsonSerializerContext;
