using System.Buffers;
using System.Text;

namespace Postern.Smtp.Internal;

/// <summary>Serialises <see cref="SmtpReply"/> to the wire: CRLF lines, "ddd-" continuation, sanitised text.</summary>
internal static class ReplyFormatter
{
    /// <summary>Replies from the handler are trusted for meaning, not for form: fix what would break the protocol.</summary>
    public static SmtpReply Normalize(SmtpReply? reply)
    {
        if (reply is null || reply.Code is < 200 or > 599)
        {
            return SmtpReplies.TemporaryServerError;
        }
        var cls = reply.Code / 100;
        if (cls == 3)
        {
            return reply;
        }
        if (!IsValidEnhancedCode(reply.EnhancedCode, cls))
        {
            return reply with { EnhancedCode = $"{cls}.0.0" };
        }
        return reply;
    }

    /// <summary>RFC 3463: class "." subject "." detail, where class agrees with the reply code.</summary>
    public static bool IsValidEnhancedCode(string? code, int replyClass)
    {
        if (string.IsNullOrEmpty(code) || code.Length < 5 || code.Length > 9 || code[0] - '0' != replyClass || code[1] != '.')
        {
            return false;
        }
        var rest = code.AsSpan(2);
        var dot = rest.IndexOf('.');
        return dot is >= 1 and <= 3 && AllDigits(rest[..dot]) && rest.Length - dot - 1 is >= 1 and <= 3 && AllDigits(rest[(dot + 1)..]);
    }

    private static bool AllDigits(ReadOnlySpan<char> s)
    {
        foreach (var c in s)
        {
            if (c is < '0' or > '9')
            {
                return false;
            }
        }
        return true;
    }

    public static void Write(IBufferWriter<byte> output, SmtpReply reply)
    {
        var text = reply.Text.AsSpan();
        var code = reply.Code is >= 200 and <= 599 ? reply.Code : 451;
        while (true)
        {
            var nl = text.IndexOf('\n');
            var line = nl < 0 ? text : text[..nl];
            WriteLine(output, code, nl >= 0, reply.EnhancedCode, line.TrimEnd('\r'));
            if (nl < 0)
            {
                return;
            }
            text = text[(nl + 1)..];
        }
    }

    private static void WriteLine(IBufferWriter<byte> output, int code, bool more, string enhancedCode, ReadOnlySpan<char> text)
    {
        var max = 4 + enhancedCode.Length + 1 + Encoding.UTF8.GetMaxByteCount(text.Length) + 2;
        var span = output.GetSpan(max);
        span[0] = (byte)('0' + code / 100);
        span[1] = (byte)('0' + code / 10 % 10);
        span[2] = (byte)('0' + code % 10);
        span[3] = more ? (byte)'-' : (byte)' ';
        var n = 4;
        if (enhancedCode.Length > 0)
        {
            n += Encoding.ASCII.GetBytes(enhancedCode, span[n..]);
            if (text.Length > 0)
            {
                span[n++] = (byte)' ';
            }
        }
        var start = n;
        n += Encoding.UTF8.GetBytes(text, span[n..]);
        // Control characters in the text would let a reply forge protocol lines.
        foreach (ref var b in span[start..n])
        {
            if (b < 0x20 || b == 0x7F)
            {
                b = (byte)' ';
            }
        }
        if (n == 4)
        {
            n = 3; // "250" alone is valid; "250 " with nothing after is tolerated but untidy
        }
        span[n++] = (byte)'\r';
        span[n++] = (byte)'\n';
        output.Advance(n);
    }

    /// <summary>The EHLO reply: host name line then one keyword per line.</summary>
    public static byte[] BuildEhlo(string hostName, long maxSize, bool offerStartTls)
    {
        var keywords = new List<string>
        {
            $"SIZE {maxSize}",
            "8BITMIME",
            "PIPELINING",
            "SMTPUTF8",
            "ENHANCEDSTATUSCODES",
            "CHUNKING",
        };
        if (offerStartTls)
        {
            keywords.Add("STARTTLS");
        }
        var sb = new StringBuilder();
        sb.Append("250-").Append(hostName).Append("\r\n");
        for (var i = 0; i < keywords.Count; i++)
        {
            sb.Append(i == keywords.Count - 1 ? "250 " : "250-").Append(keywords[i]).Append("\r\n");
        }
        return Encoding.ASCII.GetBytes(sb.ToString());
    }
}
