using System.Net;
using System.Net.Sockets;

namespace Postern.Smtp.Internal;

/// <summary>
/// RFC 5321 §4.1.2 path syntax, with the RFC 6531 UTF-8 extensions when SMTPUTF8 was given.
/// Decisions (strict unless real senders need otherwise):
/// <list type="bullet">
/// <item>Angle brackets are required; spaces between "FROM:"/"TO:" and "&lt;" are tolerated (the caller strips them).</item>
/// <item>Source routes (&lt;@a,@b:user@d&gt;) are refused with 501 5.1.3: RFC 5321 says to ignore them, but no legitimate
/// sender uses them any more and honouring or silently dropping them only hides abuse.</item>
/// <item>Quoted local parts are kept with their quotes and escapes, exactly as written; the handler decides.</item>
/// <item>Domains must follow the LDH grammar (no trailing dot, no underscore, labels of 1–63 octets, total ≤ 255).
/// With SMTPUTF8, non-ASCII characters are allowed in labels (U-labels); IDNA validity is not checked.</item>
/// <item>Address literals [1.2.3.4] and [IPv6:…] are passed through with their brackets; general literals (tag:…) are refused.</item>
/// <item>The 64-octet local-part limit of §4.5.3.1.1 is not enforced: SRS and VERP addresses routinely exceed it,
/// and the command line limit bounds everything anyway.</item>
/// <item>&lt;postmaster&gt; without a domain is accepted for RCPT only (RFC 5321 §4.5.1); it has an empty Domain.</item>
/// </list>
/// </summary>
internal static class SmtpPathParser
{
    /// <summary>Splits "&lt;path&gt; params" into the text between the brackets and what follows the '&gt;'.</summary>
    public static bool TrySplitPath(ReadOnlySpan<char> text, out ReadOnlySpan<char> inner, out ReadOnlySpan<char> rest)
    {
        inner = default;
        rest = default;
        if (text.IsEmpty || text[0] != '<')
        {
            return false;
        }
        var inQuote = false;
        for (var i = 1; i < text.Length; i++)
        {
            var c = text[i];
            if (inQuote)
            {
                if (c == '\\')
                {
                    i++;
                }
                else if (c == '"')
                {
                    inQuote = false;
                }
            }
            else if (c == '"')
            {
                inQuote = true;
            }
            else if (c == '>')
            {
                inner = text[1..i];
                rest = text[(i + 1)..];
                return rest.IsEmpty || rest[0] == ' ';
            }
            else if (c == '<')
            {
                return false;
            }
        }
        return false;
    }

    /// <summary>esmtp-param = esmtp-keyword ["=" esmtp-value] (RFC 5321 §4.1.2; RFC 6531 §3.3 allows UTF-8 values).</summary>
    public static bool TrySplitParameter(ReadOnlySpan<char> param, bool allowUtf8, out ReadOnlySpan<char> keyword, out ReadOnlySpan<char> value, out bool hasValue)
    {
        var eq = param.IndexOf('=');
        hasValue = eq >= 0;
        keyword = hasValue ? param[..eq] : param;
        value = hasValue ? param[(eq + 1)..] : default;
        if (keyword.IsEmpty || !char.IsAsciiLetterOrDigit(keyword[0]))
        {
            return false;
        }
        foreach (var c in keyword)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '-')
            {
                return false;
            }
        }
        if (hasValue)
        {
            if (value.IsEmpty)
            {
                return false;
            }
            foreach (var c in value)
            {
                var ok = c is >= (char)33 and <= (char)126 and not '=' || (allowUtf8 && c >= 0x80);
                if (!ok)
                {
                    return false;
                }
            }
        }
        return true;
    }

    /// <summary>Parses the text between the angle brackets. Returns null on success, else the reply to send.</summary>
    public static SmtpReply? ParseMailbox(ReadOnlySpan<char> inner, bool allowNull, bool allowPostmaster, bool allowUtf8, out SmtpAddress? address)
    {
        address = null;
        if (inner.IsEmpty)
        {
            if (!allowNull)
            {
                return SmtpReplies.NullRecipient;
            }
            address = SmtpAddress.Null;
            return null;
        }
        if (inner[0] == '@')
        {
            return SmtpReplies.SourceRoute;
        }
        if (!allowUtf8 && inner.ContainsAnyExceptInRange((char)0, (char)0x7F))
        {
            return SmtpReplies.NonAsciiAddress;
        }
        if (allowPostmaster && inner.Equals("postmaster", StringComparison.OrdinalIgnoreCase))
        {
            address = new SmtpAddress(inner.ToString(), "");
            return null;
        }

        var localLength = inner[0] == '"' ? QuotedStringLength(inner, allowUtf8) : DotStringLength(inner, allowUtf8);
        if (localLength <= 0 || localLength >= inner.Length || inner[localLength] != '@')
        {
            return SmtpReplies.BadAddress;
        }
        var domain = inner[(localLength + 1)..];
        if (!(domain.Length > 0 && domain[0] == '[' ? IsAddressLiteral(domain) : IsDomain(domain, allowUtf8)))
        {
            return SmtpReplies.BadAddress;
        }
        address = new SmtpAddress(inner[..localLength].ToString(), domain.ToString());
        return null;
    }

    /// <summary>Length of a Dot-string at the start of <paramref name="s"/>, or -1 when malformed.</summary>
    private static int DotStringLength(ReadOnlySpan<char> s, bool allowUtf8)
    {
        var i = 0;
        var atomStart = true;
        for (; i < s.Length; i++)
        {
            var c = s[i];
            if (c == '.')
            {
                if (atomStart)
                {
                    return -1; // leading or doubled dot
                }
                atomStart = true;
            }
            else if (IsAtext(c) || (allowUtf8 && c >= 0x80))
            {
                atomStart = false;
            }
            else
            {
                break;
            }
        }
        return atomStart ? -1 : i; // empty or trailing dot
    }

    /// <summary>Length of a Quoted-string (quotes included) at the start of <paramref name="s"/>, or -1.</summary>
    private static int QuotedStringLength(ReadOnlySpan<char> s, bool allowUtf8)
    {
        for (var i = 1; i < s.Length; i++)
        {
            var c = s[i];
            if (c == '"')
            {
                return i + 1;
            }
            if (c == '\\')
            {
                // quoted-pairSMTP = %d92 %d32-126
                if (++i >= s.Length || s[i] is < (char)32 or > (char)126)
                {
                    return -1;
                }
            }
            else if (!(c is >= (char)32 and <= (char)126 || (allowUtf8 && c >= 0x80)))
            {
                return -1;
            }
        }
        return -1;
    }

    private static bool IsAtext(char c) => char.IsAsciiLetterOrDigit(c) || c switch
    {
        '!' or '#' or '$' or '%' or '&' or '\'' or '*' or '+' or '-' or '/' or '=' or '?' or '^' or '_' or '`' or '{' or '|' or '}' or '~' => true,
        _ => false,
    };

    /// <summary>Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str] (or a U-label under SMTPUTF8).</summary>
    internal static bool IsDomain(ReadOnlySpan<char> d, bool allowUtf8)
    {
        if (d.IsEmpty || d.Length > 255)
        {
            return false;
        }
        foreach (var range in d.Split('.'))
        {
            var label = d[range];
            if (label.IsEmpty || label.Length > 63 || label[0] == '-' || label[^1] == '-')
            {
                return false;
            }
            foreach (var c in label)
            {
                if (!(char.IsAsciiLetterOrDigit(c) || c == '-' || (allowUtf8 && c >= 0x80)))
                {
                    return false;
                }
            }
        }
        return true;
    }

    private static bool IsAddressLiteral(ReadOnlySpan<char> d)
    {
        if (d.Length < 3 || d[^1] != ']')
        {
            return false;
        }
        var content = d[1..^1];
        if (content.StartsWith("IPv6:", StringComparison.OrdinalIgnoreCase))
        {
            var v6 = content[5..];
            return !v6.ContainsAnyExcept("0123456789abcdefABCDEF:.") && IPAddress.TryParse(v6, out var ip) && ip.AddressFamily == AddressFamily.InterNetworkV6;
        }
        // IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT (0-255). IPAddress.TryParse accepts too much ("1", "0x1").
        var parts = 0;
        foreach (var range in content.Split('.'))
        {
            var part = content[range];
            if (++parts > 4 || part.IsEmpty || part.Length > 3 || part.ContainsAnyExceptInRange('0', '9') || int.Parse(part) > 255)
            {
                return false;
            }
        }
        return parts == 4;
    }
}
