using System.Globalization;
using System.Text;

namespace TritonEmulator.Repository;

internal enum TokenKind
{
    Identifier,
    Integer,
    Float,
    String,
    Symbol,
    End,
}

/// <summary>One token of protobuf text format, with its 1-based position. Strings carry their decoded bytes.</summary>
internal readonly record struct Token(TokenKind Kind, string Text, int Line, int Column, byte[]? Bytes = null)
{
    public bool IsSymbol(char symbol) => Kind == TokenKind.Symbol && Text.Length == 1 && Text[0] == symbol;

    public string Describe() => Kind switch
    {
        TokenKind.End => "end of input",
        TokenKind.String => $"string {Text}",
        _ => $"\"{Text}\"",
    };
}

/// <summary>
/// Splits protobuf text format into tokens on demand (so errors surface in reading order), the way
/// protobuf's C++ <c>io::Tokenizer</c> does: identifiers, integers (decimal, <c>0x</c> hex, leading-zero
/// octal), floats (<c>1.5</c>, <c>.5</c>, <c>1e-3</c>, <c>2f</c>), quoted strings with C escapes, one-character
/// symbols, and <c>#</c> comments to the end of the line.
/// </summary>
internal sealed class TextFormatTokenizer
{
    private const string Symbols = "{}<>[]:;,-/";
    private readonly string _text;
    private int _pos;
    private int _line = 1;
    private int _lineStart;

    public TextFormatTokenizer(string text)
    {
        _text = text;
        Current = Read();
    }

    public Token Current { get; private set; }

    public Token Next()
    {
        var token = Current;
        if (token.Kind != TokenKind.End)
        {
            Current = Read();
        }

        return token;
    }

    private int Column => _pos - _lineStart + 1;

    private Token Read()
    {
        SkipWhitespaceAndComments();
        int line = _line, column = Column;
        if (_pos >= _text.Length)
        {
            return new Token(TokenKind.End, "", line, column);
        }

        char c = _text[_pos];
        if (char.IsAsciiLetter(c) || c == '_')
        {
            int start = _pos;
            while (_pos < _text.Length && IsIdentifierChar(_text[_pos]))
            {
                _pos++;
            }

            return new Token(TokenKind.Identifier, _text[start.._pos], line, column);
        }

        if (char.IsAsciiDigit(c) || (c == '.' && _pos + 1 < _text.Length && char.IsAsciiDigit(_text[_pos + 1])))
        {
            return ReadNumber(line, column);
        }

        if (c is '"' or '\'')
        {
            return ReadString(line, column);
        }

        if (Symbols.Contains(c))
        {
            _pos++;
            return new Token(TokenKind.Symbol, c.ToString(), line, column);
        }

        throw new TextFormatException($"unexpected character '{c}'", line, column);
    }

    private void SkipWhitespaceAndComments()
    {
        while (_pos < _text.Length)
        {
            char c = _text[_pos];
            if (c == '\n')
            {
                _pos++;
                _line++;
                _lineStart = _pos;
            }
            else if (c is ' ' or '\t' or '\r' or '\f' or '\v')
            {
                _pos++;
            }
            else if (c == '#')
            {
                while (_pos < _text.Length && _text[_pos] != '\n')
                {
                    _pos++;
                }
            }
            else
            {
                return;
            }
        }
    }

    private static bool IsIdentifierChar(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    private Token ReadNumber(int line, int column)
    {
        int start = _pos;
        bool isFloat = false;
        if (_text[_pos] == '0' && _pos + 1 < _text.Length && _text[_pos + 1] is 'x' or 'X')
        {
            _pos += 2;
            int digitsStart = _pos;
            while (_pos < _text.Length && char.IsAsciiHexDigit(_text[_pos]))
            {
                _pos++;
            }

            if (_pos == digitsStart)
            {
                throw new TextFormatException($"\"{_text[start.._pos]}\" has no hex digits", line, column);
            }
        }
        else
        {
            SkipDigits();
            if (_pos < _text.Length && _text[_pos] == '.')
            {
                isFloat = true;
                _pos++;
                SkipDigits();
            }

            if (_pos < _text.Length && _text[_pos] is 'e' or 'E')
            {
                isFloat = true;
                _pos++;
                if (_pos < _text.Length && _text[_pos] is '+' or '-')
                {
                    _pos++;
                }

                int exponentStart = _pos;
                SkipDigits();
                if (_pos == exponentStart)
                {
                    throw new TextFormatException($"\"{_text[start.._pos]}\" has an exponent without digits", line, column);
                }
            }

            if (_pos < _text.Length && _text[_pos] is 'f' or 'F')
            {
                isFloat = true;
                _pos++;
            }
        }

        if (_pos < _text.Length && (IsIdentifierChar(_text[_pos]) || _text[_pos] == '.'))
        {
            while (_pos < _text.Length && (IsIdentifierChar(_text[_pos]) || _text[_pos] == '.'))
            {
                _pos++;
            }

            throw new TextFormatException($"\"{_text[start.._pos]}\" is not a valid number", line, column);
        }

        string text = _text[start.._pos];
        if (!isFloat && text.Length > 1 && text[0] == '0' && text[1] is not ('x' or 'X') && !text.All(static ch => ch is >= '0' and <= '7'))
        {
            throw new TextFormatException($"\"{text}\" starts with 0, so it is octal, but has digits other than 0-7", line, column);
        }

        return new Token(isFloat ? TokenKind.Float : TokenKind.Integer, text, line, column);
    }

    private void SkipDigits()
    {
        while (_pos < _text.Length && char.IsAsciiDigit(_text[_pos]))
        {
            _pos++;
        }
    }

    private Token ReadString(int line, int column)
    {
        char quote = _text[_pos];
        int start = _pos;
        _pos++;
        var bytes = new List<byte>();
        while (true)
        {
            if (_pos >= _text.Length || _text[_pos] == '\n')
            {
                throw new TextFormatException("unterminated string: no closing " + (quote == '"' ? "'\"'" : "\"'\"") + " on this line", line, column);
            }

            char c = _text[_pos];
            if (c == quote)
            {
                _pos++;
                return new Token(TokenKind.String, _text[start.._pos], line, column, [.. bytes]);
            }

            if (c == '\\')
            {
                ReadEscape(bytes);
                continue;
            }

            int runStart = _pos;
            while (_pos < _text.Length && _text[_pos] != quote && _text[_pos] != '\\' && _text[_pos] != '\n')
            {
                _pos++;
            }

            bytes.AddRange(Encoding.UTF8.GetBytes(_text, runStart, _pos - runStart));
        }
    }

    private void ReadEscape(List<byte> bytes)
    {
        int escapeColumn = Column;
        _pos++;
        if (_pos >= _text.Length)
        {
            throw new TextFormatException("unterminated string: input ends after '\\'", _line, escapeColumn);
        }

        char c = _text[_pos++];
        switch (c)
        {
            case 'n': bytes.Add((byte)'\n'); return;
            case 't': bytes.Add((byte)'\t'); return;
            case 'r': bytes.Add((byte)'\r'); return;
            case 'a': bytes.Add(0x07); return;
            case 'b': bytes.Add(0x08); return;
            case 'f': bytes.Add(0x0C); return;
            case 'v': bytes.Add(0x0B); return;
            case '\\': bytes.Add((byte)'\\'); return;
            case '\'': bytes.Add((byte)'\''); return;
            case '"': bytes.Add((byte)'"'); return;
            case '?': bytes.Add((byte)'?'); return;
        }

        if (c is >= '0' and <= '7')
        {
            int value = c - '0';
            for (int i = 0; i < 2 && _pos < _text.Length && _text[_pos] is >= '0' and <= '7'; i++)
            {
                value = (value * 8) + (_text[_pos++] - '0');
            }

            if (value > 0xFF)
            {
                throw new TextFormatException($"octal escape \\{Convert.ToString(value, 8)} is larger than a byte", _line, escapeColumn);
            }

            bytes.Add((byte)value);
            return;
        }

        if (c is 'x' or 'X')
        {
            int digitsStart = _pos;
            while (_pos < _text.Length && _pos - digitsStart < 2 && char.IsAsciiHexDigit(_text[_pos]))
            {
                _pos++;
            }

            if (_pos == digitsStart)
            {
                throw new TextFormatException("\\x escape without hex digits", _line, escapeColumn);
            }

            bytes.Add(byte.Parse(_text.AsSpan(digitsStart, _pos - digitsStart), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
            return;
        }

        if (c is 'u' or 'U')
        {
            int length = c == 'u' ? 4 : 8;
            if (_pos + length > _text.Length
                || !int.TryParse(_text.AsSpan(_pos, length), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out int codePoint)
                || !Rune.IsValid(codePoint))
            {
                throw new TextFormatException($"\\{c} escape needs {length} hex digits naming a Unicode scalar value", _line, escapeColumn);
            }

            _pos += length;
            Span<byte> utf8 = stackalloc byte[4];
            int written = new Rune(codePoint).EncodeToUtf8(utf8);
            bytes.AddRange(utf8[..written]);
            return;
        }

        throw new TextFormatException($"unknown escape sequence \\{c}", _line, escapeColumn);
    }
}
