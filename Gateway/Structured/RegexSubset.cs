using System.Text.RegularExpressions;

namespace Gateway.Structured;

/// <summary>
/// The <c>pattern</c> regexes a grammar can hold: regular ones (literals, classes, groups,
/// alternation, quantifiers, anchors at the ends). Lookarounds and back-references are not regular,
/// so no grammar-based decoder (xgrammar, outlines, llama.cpp) takes them.
/// </summary>
public static class RegexSubset
{
    public static bool IsSupported(string pattern, out string reason)
    {
        try
        {
            _ = new Regex(pattern, RegexOptions.None, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException exception)
        {
            reason = "not a valid regular expression: " + exception.Message;
            return false;
        }
        for (var i = 0; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (c == '\\' && i + 1 < pattern.Length)
            {
                var next = pattern[i + 1];
                if (char.IsAsciiDigit(next) && next != '0' || next is 'k' or 'b' or 'B' or 'G' or 'A' or 'Z' or 'z' or 'p' or 'P')
                {
                    reason = $"'\\{next}' (back-references, word boundaries and Unicode categories) cannot be expressed as a grammar";
                    return false;
                }
                i++;
                continue;
            }
            if (c == '(' && i + 2 < pattern.Length && pattern[i + 1] == '?' && pattern[i + 2] != ':')
            {
                reason = "lookarounds, named and inline-option groups cannot be expressed as a grammar (only '(?:…)')";
                return false;
            }
            if (c is '^' or '$' && !(i == 0 && c == '^' || i == pattern.Length - 1 && c == '$') && !InClass(pattern, i))
            {
                reason = "anchors are only supported at the start and the end";
                return false;
            }
        }
        reason = "";
        return true;
    }

    private static bool InClass(string pattern, int index)
    {
        var open = false;
        for (var i = 0; i < index; i++)
        {
            if (pattern[i] == '\\')
            {
                i++;
            }
            else if (pattern[i] == '[')
            {
                open = true;
            }
            else if (pattern[i] == ']')
            {
                open = false;
            }
        }
        return open;
    }
}
