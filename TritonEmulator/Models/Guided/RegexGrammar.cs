using System.Globalization;
using System.Text;

namespace TritonEmulator.Models.Guided;

/// <summary>
/// The regular subset of regex syntax → GBNF: literals, <c>.</c>, classes (ranges, negation, <c>\d \w \s</c>),
/// groups (<c>( )</c>, <c>(?: )</c>), alternation, quantifiers <c>* + ? {m} {m,} {m,n}</c> (lazy marks
/// ignored), <c>^</c> / <c>$</c> at the ends. The whole text must match, as xgrammar and outlines
/// read a schema <c>pattern</c>. Inside a JSON string, each character is written as JSON writes it
/// (<c>"</c> and <c>\</c> escaped, control characters excluded). Lookarounds, back-references and
/// other non-regular constructs are refused with a <see cref="FormatException"/>.
/// </summary>
internal sealed class RegexGrammar
{
    private readonly string _pattern;
    private readonly bool _json;
    private int _at;

    private RegexGrammar(string pattern, bool json)
    {
        _pattern = pattern;
        _json = json;
    }

    public static string ToGbnf(string pattern, bool insideJsonString)
    {
        var body = pattern;
        if (body.StartsWith('^'))
        {
            body = body[1..];
        }
        if (body.EndsWith('$') && !body.EndsWith("\\$", StringComparison.Ordinal))
        {
            body = body[..^1];
        }
        var parser = new RegexGrammar(body, insideJsonString);
        var result = parser.Alternation();
        if (parser._at != body.Length)
        {
            throw new FormatException($"regex '{pattern}': unexpected '{body[parser._at]}' at {parser._at}");
        }
        return "(" + result + ")";
    }

    private string Alternation()
    {
        var options = new List<string> { Sequence() };
        while (Peek('|'))
        {
            _at++;
            options.Add(Sequence());
        }
        return string.Join(" | ", options);
    }

    private string Sequence()
    {
        var parts = new List<string>();
        while (_at < _pattern.Length && _pattern[_at] is not ('|' or ')'))
        {
            var atom = Atom();
            parts.Add(atom + Quantifier());
        }
        return parts.Count == 0 ? "\"\"" : string.Join(" ", parts);
    }

    private string Quantifier()
    {
        if (_at >= _pattern.Length)
        {
            return "";
        }
        string result;
        switch (_pattern[_at])
        {
            case '*' or '+' or '?':
                result = _pattern[_at].ToString();
                _at++;
                break;
            case '{':
                var close = _pattern.IndexOf('}', _at);
                if (close < 0)
                {
                    return "";
                }
                var inner = _pattern[(_at + 1)..close];
                var parts = inner.Split(',');
                if (parts.Length is < 1 or > 2 || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var min)
                    || parts.Length == 2 && parts[1].Length > 0 && !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out _))
                {
                    throw new FormatException($"regex '{_pattern}': bad quantifier '{{{inner}}}'");
                }
                result = "{" + inner + "}";
                _at = close + 1;
                _ = min;
                break;
            default:
                return "";
        }
        if (Peek('?'))
        {
            _at++; // lazy: the same language
        }
        return result;
    }

    private string Atom()
    {
        var c = _pattern[_at];
        switch (c)
        {
            case '(':
                _at++;
                if (Peek('?'))
                {
                    if (_at + 1 < _pattern.Length && _pattern[_at + 1] == ':')
                    {
                        _at += 2;
                    }
                    else
                    {
                        throw new FormatException($"regex '{_pattern}': lookarounds and special groups are not regular");
                    }
                }
                var inner = Alternation();
                if (!Peek(')'))
                {
                    throw new FormatException($"regex '{_pattern}': missing ')'");
                }
                _at++;
                return "(" + inner + ")";
            case '[':
                return Class();
            case '.':
                _at++;
                return _json ? "char" : "[^\\n]";
            case '\\':
                _at++;
                return Escape(inClass: false);
            case '^' or '$':
                throw new FormatException($"regex '{_pattern}': anchors are only supported at the ends");
            case '*' or '+' or '?' or '{':
                throw new FormatException($"regex '{_pattern}': nothing to repeat at {_at}");
            default:
                _at++;
                return Char(c);
        }
    }

    private string Escape(bool inClass)
    {
        if (_at >= _pattern.Length)
        {
            throw new FormatException($"regex '{_pattern}': ends with '\\'");
        }
        var e = _pattern[_at++];
        return e switch
        {
            'd' => inClass ? "0-9" : "[0-9]",
            'w' => inClass ? "a-zA-Z0-9_" : "[a-zA-Z0-9_]",
            's' => inClass ? " " : "\" \"",
            'D' => "[^0-9" + JsonExclusions() + "]",
            'W' => "[^a-zA-Z0-9_" + JsonExclusions() + "]",
            'S' => "[^ " + JsonExclusions() + "]",
            'n' => _json ? (inClass ? throw new FormatException("'\\n' in a class inside a JSON string") : Literal("\\n")) : (inClass ? "\\n" : "\"\\n\""),
            't' => _json ? (inClass ? throw new FormatException("'\\t' in a class inside a JSON string") : Literal("\\t")) : (inClass ? "\\t" : "\"\\t\""),
            _ when char.IsAsciiDigit(e) || e is 'b' or 'B' or 'k' or 'p' or 'P' or 'A' or 'Z' or 'z' or 'G'
                => throw new FormatException($"regex '{_pattern}': '\\{e}' is not regular or not supported"),
            _ => inClass ? ClassChar(e) : Char(e),
        };
    }

    private string Class()
    {
        _at++; // '['
        var negated = Peek('^');
        if (negated)
        {
            _at++;
        }
        var set = new StringBuilder();
        var quote = false;
        var backslash = false;
        var first = true;
        while (_at < _pattern.Length && (_pattern[_at] != ']' || first))
        {
            first = false;
            var c = _pattern[_at];
            if (c == '\\')
            {
                _at++;
                var escaped = _pattern[_at];
                if (escaped is '"' or '\\')
                {
                    _at++;
                    (quote, backslash) = (quote || escaped == '"', backslash || escaped == '\\');
                    continue;
                }
                set.Append(Escape(inClass: true));
                continue;
            }
            _at++;
            if (c == '"' && _json)
            {
                quote = true;
                continue;
            }
            if (c == '-' && set.Length > 0 && _at < _pattern.Length && _pattern[_at] != ']')
            {
                set.Append('-');
                continue;
            }
            set.Append(ClassChar(c));
        }
        if (_at >= _pattern.Length)
        {
            throw new FormatException($"regex '{_pattern}': missing ']'");
        }
        _at++; // ']'
        if (!_json)
        {
            return "[" + (negated ? "^" : "") + set + (quote ? "\"" : "") + (backslash ? "\\\\" : "") + "]";
        }
        if (negated)
        {
            // Raw quotes, backslashes and control characters cannot appear in a JSON string; their escapes can, unless excluded.
            var rest = new List<string> { "[^" + set + JsonExclusions() + "]" };
            if (!quote)
            {
                rest.Add(Literal("\\\""));
            }
            if (!backslash)
            {
                rest.Add(Literal("\\\\"));
            }
            return "(" + string.Join(" | ", rest) + ")";
        }
        var options = new List<string>();
        if (set.Length > 0)
        {
            options.Add("[" + set + "]");
        }
        if (quote)
        {
            options.Add(Literal("\\\""));
        }
        if (backslash)
        {
            options.Add(Literal("\\\\"));
        }
        return options.Count == 0 ? throw new FormatException($"regex '{_pattern}': empty class") : options.Count == 1 ? options[0] : "(" + string.Join(" | ", options) + ")";
    }

    private static string JsonExclusions() => "\"\\\\\\x7F\\x00-\\x1F";

    private static string ClassChar(char c) => c switch
    {
        ']' or '[' or '\\' or '^' or '-' => "\\" + c,
        < ' ' => "\\x" + ((int)c).ToString("X2", CultureInfo.InvariantCulture),
        _ => c.ToString(),
    };

    private string Char(char c) => _json && c is '"' or '\\' ? Literal("\\" + c) : Literal(c.ToString());

    private static string Literal(string text) => JsonSchemaGrammar.Literal(text);

    private bool Peek(char c) => _at < _pattern.Length && _pattern[_at] == c;
}
