namespace TritonEmulator.Models.Guided;

/// <summary>
/// Checks a GBNF grammar before llama.cpp sees it: llama.cpp's parser reports errors only to its log
/// and hands back no sampler, which LLamaSharp 0.30 then adds to the chain anyway (the process
/// dies). Refused: syntax errors, a missing <c>root</c>, undefined rules, left recursion.
/// </summary>
internal static class GbnfCheck
{
    private abstract record Node;
    private sealed record Terminal(bool CanBeEmpty) : Node;
    private sealed record RuleRef(string Name) : Node;
    private sealed record Group(List<List<(Node Node, bool Optional)>> Alternatives) : Node;

    public static void Validate(string grammar)
    {
        var rules = Parse(grammar);
        if (!rules.ContainsKey("root"))
        {
            throw new FormatException("the grammar has no 'root' rule");
        }
        foreach (var (_, body) in rules)
        {
            foreach (var name in References(body))
            {
                if (!rules.ContainsKey(name))
                {
                    throw new FormatException($"the grammar uses the undefined rule '{name}'");
                }
            }
        }
        // Nullable rules, to a fixed point.
        var nullable = new HashSet<string>(StringComparer.Ordinal);
        for (var changed = true; changed;)
        {
            changed = false;
            foreach (var (name, body) in rules)
            {
                if (!nullable.Contains(name) && CanBeEmpty(body, nullable))
                {
                    changed = nullable.Add(name);
                }
            }
        }
        // Left recursion: a rule reachable from itself without consuming input.
        var first = rules.ToDictionary(r => r.Key, r => FirstRefs(r.Value, nullable), StringComparer.Ordinal);
        foreach (var name in rules.Keys)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var stack = new Stack<string>(first[name]);
            while (stack.Count > 0)
            {
                var next = stack.Pop();
                if (next == name)
                {
                    throw new FormatException($"the grammar is left-recursive at rule '{name}'");
                }
                if (seen.Add(next))
                {
                    foreach (var further in first[next])
                    {
                        stack.Push(further);
                    }
                }
            }
        }
    }

    private static Dictionary<string, Group> Parse(string grammar)
    {
        var rules = new Dictionary<string, Group>(StringComparer.Ordinal);
        var text = grammar;
        var at = 0;
        SkipSpace(text, ref at, newlines: true);
        while (at < text.Length)
        {
            var name = Name(text, ref at);
            if (name.Length == 0)
            {
                throw new FormatException($"grammar syntax error at {at}: expected a rule name");
            }
            SkipSpace(text, ref at, newlines: false);
            if (!text.AsSpan(at).StartsWith("::="))
            {
                throw new FormatException($"grammar syntax error at {at}: expected '::=' after '{name}'");
            }
            at += 3;
            var body = Alternatives(text, ref at, nested: false);
            rules[name] = body; // a later definition replaces, as in llama.cpp
            SkipSpace(text, ref at, newlines: true);
        }
        return rules;
    }

    private static Group Alternatives(string text, ref int at, bool nested)
    {
        var alternatives = new List<List<(Node, bool)>> { new() };
        while (true)
        {
            SkipSpace(text, ref at, newlines: nested);
            if (at >= text.Length)
            {
                return nested ? throw new FormatException("grammar syntax error: missing ')'") : new Group(alternatives);
            }
            var c = text[at];
            if (c == '\n' || c == '\r')
            {
                // A newline ends the rule unless the next line continues it (starts with '|' or is not "name ::=").
                var look = at;
                SkipSpace(text, ref look, newlines: true);
                if (look >= text.Length || IsRuleStart(text, look))
                {
                    at = look;
                    return new Group(alternatives);
                }
                at = look;
                continue;
            }
            switch (c)
            {
                case '|':
                    at++;
                    alternatives.Add([]);
                    continue;
                case ')':
                    if (!nested)
                    {
                        throw new FormatException($"grammar syntax error at {at}: unexpected ')'");
                    }
                    at++;
                    return new Group(alternatives);
                case '(':
                    at++;
                    alternatives[^1].Add((Alternatives(text, ref at, nested: true), false));
                    break;
                case '"':
                    alternatives[^1].Add((new Terminal(Literal(text, ref at)), false));
                    break;
                case '[':
                    Class(text, ref at);
                    alternatives[^1].Add((new Terminal(false), false));
                    break;
                case '.':
                    at++;
                    alternatives[^1].Add((new Terminal(false), false));
                    break;
                case '*' or '?':
                    at++;
                    MarkOptional(alternatives[^1], text, at);
                    continue;
                case '+':
                    at++;
                    Require(alternatives[^1], at);
                    continue;
                case '{':
                    var close = text.IndexOf('}', at);
                    if (close < 0)
                    {
                        throw new FormatException($"grammar syntax error at {at}: missing '}}'");
                    }
                    var min = text[(at + 1)..close].Split(',')[0].Trim();
                    Require(alternatives[^1], at);
                    if (min == "0")
                    {
                        MarkOptional(alternatives[^1], text, at);
                    }
                    at = close + 1;
                    continue;
                default:
                    var name = Name(text, ref at);
                    if (name.Length == 0)
                    {
                        throw new FormatException($"grammar syntax error at {at}: unexpected '{c}'");
                    }
                    alternatives[^1].Add((new RuleRef(name), false));
                    break;
            }
        }
    }

    private static void Require(List<(Node Node, bool Optional)> sequence, int at)
    {
        if (sequence.Count == 0)
        {
            throw new FormatException($"grammar syntax error at {at}: nothing to repeat");
        }
    }

    private static void MarkOptional(List<(Node Node, bool Optional)> sequence, string text, int at)
    {
        Require(sequence, at);
        sequence[^1] = (sequence[^1].Node, true);
    }

    private static bool IsRuleStart(string text, int at)
    {
        var look = at;
        if (Name(text, ref look).Length == 0)
        {
            return false;
        }
        SkipSpace(text, ref look, newlines: false);
        return text.AsSpan(look).StartsWith("::=");
    }

    private static string Name(string text, ref int at)
    {
        var start = at;
        while (at < text.Length && (char.IsAsciiLetterOrDigit(text[at]) || text[at] is '-' or '_'))
        {
            at++;
        }
        return text[start..at];
    }

    private static bool Literal(string text, ref int at)
    {
        at++; // opening quote
        var length = 0;
        while (at < text.Length && text[at] != '"')
        {
            if (text[at] == '\\')
            {
                at++;
            }
            if (text[at] == '\n')
            {
                throw new FormatException("grammar syntax error: unterminated string literal");
            }
            at++;
            length++;
        }
        if (at >= text.Length)
        {
            throw new FormatException("grammar syntax error: unterminated string literal");
        }
        at++;
        return length == 0;
    }

    private static void Class(string text, ref int at)
    {
        at++;
        while (at < text.Length && text[at] != ']')
        {
            if (text[at] == '\\')
            {
                at++;
            }
            at++;
        }
        if (at >= text.Length)
        {
            throw new FormatException("grammar syntax error: unterminated character class");
        }
        at++;
    }

    private static void SkipSpace(string text, ref int at, bool newlines)
    {
        while (at < text.Length)
        {
            var c = text[at];
            if (c == '#')
            {
                while (at < text.Length && text[at] != '\n')
                {
                    at++;
                }
                continue;
            }
            if (c is ' ' or '\t' || newlines && c is '\n' or '\r')
            {
                at++;
                continue;
            }
            break;
        }
    }

    private static IEnumerable<string> References(Node node) => node switch
    {
        RuleRef r => [r.Name],
        Group g => g.Alternatives.SelectMany(a => a.SelectMany(e => References(e.Node))),
        _ => [],
    };

    private static bool CanBeEmpty(Node node, HashSet<string> nullable) => node switch
    {
        Terminal t => t.CanBeEmpty,
        RuleRef r => nullable.Contains(r.Name),
        Group g => g.Alternatives.Any(a => a.All(e => e.Optional || CanBeEmpty(e.Node, nullable))),
        _ => false,
    };

    /// <summary>Rules that can come first (before any input is consumed).</summary>
    private static HashSet<string> FirstRefs(Node node, HashSet<string> nullable)
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        switch (node)
        {
            case RuleRef r:
                result.Add(r.Name);
                break;
            case Group g:
                foreach (var alternative in g.Alternatives)
                {
                    foreach (var (element, optional) in alternative)
                    {
                        result.UnionWith(FirstRefs(element, nullable));
                        if (!optional && !CanBeEmpty(element, nullable))
                        {
                            break;
                        }
                    }
                }
                break;
        }
        return result;
    }
}
