using System.Text;

namespace Postern.Core.Authentication;

/// <summary>
/// A parsed SPF macro-string (RFC 7208 §7): literal text and %{…} macros. Parsing happens when the record is
/// read, so a malformed macro anywhere in the record is a permerror before anything is evaluated (§4.6),
/// and expansion afterwards cannot fail.
/// </summary>
internal sealed class SpfMacroString
{
    private const string Delimiters = ".-+,/_=";

    private readonly IReadOnlyList<Part> _parts;

    private SpfMacroString(string text, IReadOnlyList<Part> parts)
    {
        Text = text;
        _parts = parts;
    }

    public string Text { get; }

    /// <summary>True when expansion needs the client's validated domain name (%{p}), which costs DNS queries.</summary>
    public bool UsesValidatedName => _parts.Any(p => p.Letter == 'p');

    /// <summary>Parses a macro-string; <paramref name="explanation"/> allows spaces and the c, r and t macros (explain-string, §6.2, §7.1).</summary>
    public static SpfMacroString Parse(string text, bool explanation)
    {
        var parts = new List<Part>();
        var literal = new StringBuilder();
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c != '%')
            {
                if (c > 0x7E || c < 0x20 || (c == ' ' && !explanation))
                    throw new SpfPermErrorException($"character 0x{(int)c:X2} is not allowed in '{text}'");
                literal.Append(c);
                continue;
            }
            if (i + 1 >= text.Length)
                throw new SpfPermErrorException($"'%' at the end of '{text}'");
            var next = text[++i];
            switch (next)
            {
                case '%':
                    literal.Append('%');
                    continue;
                case '_':
                    literal.Append(' ');
                    continue;
                case '-':
                    literal.Append("%20");
                    continue;
                case '{':
                    break;
                default:
                    throw new SpfPermErrorException($"'%{next}' is not a macro in '{text}'");
            }
            var close = text.IndexOf('}', i);
            if (close < 0)
                throw new SpfPermErrorException($"unterminated macro in '{text}'");
            if (literal.Length > 0)
            {
                parts.Add(new Part(literal.ToString()));
                literal.Clear();
            }
            parts.Add(ParseMacro(text[(i + 1)..close], text, explanation));
            i = close;
        }
        if (literal.Length > 0)
            parts.Add(new Part(literal.ToString()));
        return new SpfMacroString(text, parts);
    }

    private static Part ParseMacro(string body, string text, bool explanation)
    {
        if (body.Length == 0)
            throw new SpfPermErrorException($"empty macro in '{text}'");
        var letter = char.ToLowerInvariant(body[0]);
        if ("slodipvhcrt".IndexOf(letter) < 0)
            throw new SpfPermErrorException($"unknown macro letter '{body[0]}' in '{text}'");
        if (!explanation && "crt".IndexOf(letter) >= 0)
            throw new SpfPermErrorException($"macro '{body[0]}' is only allowed in explanations ('{text}')");
        var i = 1;
        while (i < body.Length && char.IsAsciiDigit(body[i]))
            i++;
        int? keep = null;
        if (i > 1)
        {
            // More labels than any name can have is the same as "all of them".
            keep = int.TryParse(body.AsSpan(1, i - 1), out var n) ? n : int.MaxValue;
            if (keep == 0)
                throw new SpfPermErrorException($"macro transformer 0 in '{text}' (must be nonzero)");
        }
        var reverse = false;
        if (i < body.Length && (body[i] == 'r' || body[i] == 'R'))
        {
            reverse = true;
            i++;
        }
        var delimiters = body[i..];
        if (delimiters.Any(d => Delimiters.IndexOf(d) < 0))
            throw new SpfPermErrorException($"bad macro '%{{{body}}}' in '{text}'");
        return new Part(null, letter, char.IsUpper(body[0]), keep, reverse, delimiters.Length == 0 ? "." : delimiters);
    }

    /// <summary>The text with every macro replaced (RFC 7208 §7.3).</summary>
    public string Expand(Func<char, string> values)
    {
        var result = new StringBuilder();
        foreach (var part in _parts)
        {
            if (part.Literal is not null)
            {
                result.Append(part.Literal);
                continue;
            }
            var value = values(part.Letter);
            var pieces = value.Split(part.Delimiters.ToCharArray());
            if (part.Reverse)
                Array.Reverse(pieces);
            if (part.Keep is int keep && keep < pieces.Length)
                pieces = pieces[^keep..];
            var expanded = string.Join('.', pieces);
            result.Append(part.UrlEscape ? Uri.EscapeDataString(expanded) : expanded);
        }
        return result.ToString();
    }

    /// <summary>True when the text ends the way a domain-spec must: a macro, or "." and a top label (RFC 7208 §7.1 domain-end).</summary>
    public static bool HasDomainEnd(string text)
    {
        if (text.EndsWith('}') || text.EndsWith("%%", StringComparison.Ordinal) || text.EndsWith("%_", StringComparison.Ordinal)
            || text.EndsWith("%-", StringComparison.Ordinal))
            return true;
        var body = text.EndsWith('.') ? text[..^1] : text;
        var dot = body.LastIndexOf('.');
        return dot >= 0 && IsTopLabel(body[(dot + 1)..]);
    }

    // toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
    private static bool IsTopLabel(string label)
    {
        if (label.Length == 0 || !label.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
            return false;
        if (!label.Contains('-'))
            return label.Any(char.IsAsciiLetter);
        return char.IsAsciiLetterOrDigit(label[0]) && char.IsAsciiLetterOrDigit(label[^1]);
    }

    private sealed record Part(string? Literal, char Letter = '\0', bool UrlEscape = false, int? Keep = null, bool Reverse = false, string Delimiters = ".");
}

/// <summary>check_host() must stop with permerror (RFC 7208 §2.6.7).</summary>
internal sealed class SpfPermErrorException(string message) : Exception(message);

/// <summary>check_host() must stop with temperror (RFC 7208 §2.6.6).</summary>
internal sealed class SpfTempErrorException(string message) : Exception(message);
