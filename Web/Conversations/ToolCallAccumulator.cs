using System.Text;

namespace Web.Conversations;

/// <summary>
/// Builds whole tool calls from OpenAI's streamed <c>delta.tool_calls</c> pieces: the first piece
/// of a call (by <c>index</c>) carries its id and function name, later ones only argument text.
/// Not thread-safe; <see cref="ChatTurn"/> holds its lock around it.
/// </summary>
internal sealed class ToolCallAccumulator
{
    private readonly List<Entry> _calls = [];

    public ToolCallAccumulator()
    {
    }

    public ToolCallAccumulator(IReadOnlyList<ToolCall> calls)
    {
        for (var i = 0; i < calls.Count; i++)
        {
            Add(i, calls[i].Id, calls[i].Name, calls[i].Arguments);
        }
    }

    public int Count => _calls.Count;

    public void Add(int index, string? id, string? name, string? arguments)
    {
        var entry = Find(index);
        if (entry is null)
        {
            entry = new Entry(index);
            _calls.Add(entry);
        }
        if (!string.IsNullOrEmpty(id))
        {
            entry.Id = id;
        }
        if (!string.IsNullOrEmpty(name))
        {
            // The gateway sends the name whole in the call's first piece; a server that streams it in pieces is joined.
            entry.Name += name;
        }
        if (!string.IsNullOrEmpty(arguments))
        {
            entry.Arguments.Append(arguments);
        }
    }

    /// <summary>The calls so far, by index.</summary>
    public List<ToolCall> ToList()
    {
        var calls = new List<ToolCall>(_calls.Count);
        foreach (var entry in _calls.OrderBy(e => e.Index))
        {
            calls.Add(new ToolCall(entry.Id, entry.Name, entry.Arguments.ToString()));
        }
        return calls;
    }

    private Entry? Find(int index)
    {
        foreach (var entry in _calls)
        {
            if (entry.Index == index)
            {
                return entry;
            }
        }
        return null;
    }

    private sealed class Entry(int index)
    {
        public int Index { get; } = index;
        public string Id { get; set; } = "";
        public string Name { get; set; } = "";
        public StringBuilder Arguments { get; } = new();
    }
}
