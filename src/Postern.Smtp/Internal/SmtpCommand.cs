using System.Buffers.Text;
using System.Text;

namespace Postern.Smtp.Internal;

internal enum SmtpVerb
{
    Unknown,
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    Bdat,
    Rset,
    Noop,
    Quit,
    Help,
    Vrfy,
    Expn,
    StartTls,
}

/// <summary>
/// One parsed command line. Parsing is purely syntactic; whether the command is allowed now is the session's call,
/// so a syntax error is carried in <see cref="Error"/> rather than replied at once.
/// </summary>
internal readonly struct SmtpCommand
{
    public SmtpVerb Verb { get; init; }

    /// <summary>Set when the verb is known but its arguments are malformed.</summary>
    public SmtpReply? Error { get; init; }

    /// <summary>HELO/EHLO argument.</summary>
    public string? Domain { get; init; }

    /// <summary>MAIL FROM / RCPT TO path.</summary>
    public SmtpAddress? Address { get; init; }

    public bool HasParameters { get; init; }

    /// <summary>SIZE=; long.MaxValue when the digits overflow (always over the limit).</summary>
    public long? Size { get; init; }

    public string? Body { get; init; }

    public bool SmtpUtf8 { get; init; }

    /// <summary>BDAT chunk size.</summary>
    public long ChunkSize { get; init; }

    /// <summary>BDAT ... LAST.</summary>
    public bool Last { get; init; }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Parses a command line without its CRLF. <paramref name="rcptAllowsUtf8"/> is whether the current
    /// transaction gave SMTPUTF8 (RFC 6531 §3.4: it governs every address of the transaction).
    /// </summary>
    public static SmtpCommand Parse(ReadOnlySpan<byte> line, bool rcptAllowsUtf8)
    {
        var sp = line.IndexOf((byte)' ');
        var verbBytes = sp < 0 ? line : line[..sp];
        var args = sp < 0 ? ReadOnlySpan<byte>.Empty : line[(sp + 1)..];
        var verb = ParseVerb(verbBytes);
        switch (verb)
        {
            case SmtpVerb.Unknown:
                return default;
            case SmtpVerb.Helo:
            case SmtpVerb.Ehlo:
                var domain = ParseHeloDomain(args);
                return new SmtpCommand { Verb = verb, Domain = domain, Error = domain is null ? SmtpReplies.SyntaxHelo : null };
            case SmtpVerb.Mail:
                return ParseMail(args);
            case SmtpVerb.Rcpt:
                return ParseRcpt(args, rcptAllowsUtf8);
            case SmtpVerb.Bdat:
                return ParseBdat(args);
            case SmtpVerb.Vrfy:
                return new SmtpCommand { Verb = verb, Error = TrimSpaces(args).IsEmpty ? SmtpReplies.SyntaxVrfy : null };
            case SmtpVerb.Data:
            case SmtpVerb.Rset:
            case SmtpVerb.Quit:
            case SmtpVerb.StartTls:
                return new SmtpCommand { Verb = verb, Error = TrimSpaces(args).IsEmpty ? null : SmtpReplies.SyntaxNoArguments };
            default:
                // NOOP, HELP, EXPN: arguments allowed and ignored.
                return new SmtpCommand { Verb = verb };
        }
    }

    internal static SmtpVerb ParseVerb(ReadOnlySpan<byte> verb)
    {
        if (verb.Length == 4)
        {
            // ASCII case folding of four letters at once; non-letters simply fail to match.
            var v = (uint)(verb[0] | verb[1] << 8 | verb[2] << 16 | verb[3] << 24) | 0x20202020u;
            return v switch
            {
                0x6F6C6568 => SmtpVerb.Helo, // "helo"
                0x6F6C6865 => SmtpVerb.Ehlo,
                0x6C69616D => SmtpVerb.Mail,
                0x74706372 => SmtpVerb.Rcpt,
                0x61746164 => SmtpVerb.Data,
                0x74616462 => SmtpVerb.Bdat,
                0x74657372 => SmtpVerb.Rset,
                0x706F6F6E => SmtpVerb.Noop,
                0x74697571 => SmtpVerb.Quit,
                0x706C6568 => SmtpVerb.Help,
                0x79667276 => SmtpVerb.Vrfy,
                0x6E707865 => SmtpVerb.Expn,
                _ => SmtpVerb.Unknown,
            };
        }
        return verb.Length == 8 && Ascii.EqualsIgnoreCase(verb, "STARTTLS"u8) ? SmtpVerb.StartTls : SmtpVerb.Unknown;
    }

    private static ReadOnlySpan<byte> TrimSpaces(ReadOnlySpan<byte> s) => s.Trim((byte)' ');

    /// <summary>
    /// Any single printable-ASCII token. Real clients send all sorts of names ("localhost", "My_PC"); the name is only
    /// recorded, never trusted, so only what would be unsafe to log or put in a Received header is refused.
    /// </summary>
    private static string? ParseHeloDomain(ReadOnlySpan<byte> args)
    {
        args = TrimSpaces(args);
        if (args.IsEmpty || args.Length > 255)
        {
            return null;
        }
        foreach (var b in args)
        {
            if (b is <= 0x20 or >= 0x7F)
            {
                return null;
            }
        }
        return Encoding.ASCII.GetString(args);
    }

    private static SmtpCommand ParseMail(ReadOnlySpan<byte> args)
    {
        if (!TryStripPrefix(ref args, "FROM:"u8) || !TryDecode(args, out var text))
        {
            return new SmtpCommand { Verb = SmtpVerb.Mail, Error = SmtpReplies.SyntaxMail };
        }
        if (!SmtpPathParser.TrySplitPath(text, out var path, out var rest))
        {
            return new SmtpCommand { Verb = SmtpVerb.Mail, Error = SmtpReplies.SyntaxMail };
        }

        long? size = null;
        string? body = null;
        var utf8 = false;
        var hasParameters = false;
        var seen = 0;
        foreach (var range in rest.Split(' '))
        {
            var param = rest[range];
            if (param.IsEmpty)
            {
                continue; // tolerate doubled spaces
            }
            hasParameters = true;
            if (!SmtpPathParser.TrySplitParameter(param, allowUtf8: true, out var keyword, out var value, out var hasValue))
            {
                return new SmtpCommand { Verb = SmtpVerb.Mail, Error = SmtpReplies.SyntaxParameter };
            }
            int bit;
            if (keyword.Equals("SIZE", StringComparison.OrdinalIgnoreCase))
            {
                bit = 1;
                if (!hasValue || value.Length == 0 || value.ContainsAnyExceptInRange('0', '9'))
                {
                    return new SmtpCommand { Verb = SmtpVerb.Mail, Error = SmtpReplies.SyntaxParameter };
                }
                size = long.TryParse(value, out var n) ? n : long.MaxValue;
            }
            else if (keyword.Equals("BODY", StringComparison.OrdinalIgnoreCase))
            {
                bit = 2;
                if (value.Equals("7BIT", StringComparison.OrdinalIgnoreCase))
                {
                    body = "7BIT";
                }
                else if (value.Equals("8BITMIME", StringComparison.OrdinalIgnoreCase))
                {
                    body = "8BITMIME";
                }
                else if (value.Equals("BINARYMIME", StringComparison.OrdinalIgnoreCase))
                {
                    return new SmtpCommand { Verb = SmtpVerb.Mail, Error = SmtpReplies.BinaryMimeUnsupported };
                }
                else
                {
                    return new SmtpCommand { Verb = SmtpVerb.Mail, Error = SmtpReplies.BadBodyType };
                }
            }
            else if (keyword.Equals("SMTPUTF8", StringComparison.OrdinalIgnoreCase))
            {
                bit = 4;
                if (hasValue)
                {
                    return new SmtpCommand { Verb = SmtpVerb.Mail, Error = SmtpReplies.SyntaxParameter };
                }
                utf8 = true;
            }
            else
            {
                return new SmtpCommand { Verb = SmtpVerb.Mail, Error = SmtpReplies.UnsupportedParameter };
            }
            if ((seen & bit) != 0)
            {
                return new SmtpCommand { Verb = SmtpVerb.Mail, Error = SmtpReplies.DuplicateParameter };
            }
            seen |= bit;
        }

        var error = SmtpPathParser.ParseMailbox(path, allowNull: true, allowPostmaster: false, allowUtf8: utf8, out var address);
        return new SmtpCommand
        {
            Verb = SmtpVerb.Mail,
            Error = error,
            Address = address,
            HasParameters = hasParameters,
            Size = size,
            Body = body,
            SmtpUtf8 = utf8,
        };
    }

    private static SmtpCommand ParseRcpt(ReadOnlySpan<byte> args, bool allowUtf8)
    {
        if (!TryStripPrefix(ref args, "TO:"u8) || !TryDecode(args, out var text) || !SmtpPathParser.TrySplitPath(text, out var path, out var rest))
        {
            return new SmtpCommand { Verb = SmtpVerb.Rcpt, Error = SmtpReplies.SyntaxRcpt };
        }
        // We advertise no RCPT extension (no DSN), so any parameter is one we do not support.
        if (!rest.Trim(' ').IsEmpty)
        {
            return new SmtpCommand { Verb = SmtpVerb.Rcpt, Error = SmtpReplies.UnsupportedParameter };
        }
        var error = SmtpPathParser.ParseMailbox(path, allowNull: false, allowPostmaster: true, allowUtf8: allowUtf8, out var address);
        return new SmtpCommand { Verb = SmtpVerb.Rcpt, Error = error, Address = address };
    }

    private static SmtpCommand ParseBdat(ReadOnlySpan<byte> args)
    {
        args = TrimSpaces(args);
        var sp = args.IndexOf((byte)' ');
        var sizeBytes = sp < 0 ? args : args[..sp];
        var rest = sp < 0 ? ReadOnlySpan<byte>.Empty : TrimSpaces(args[(sp + 1)..]);
        var last = false;
        if (!rest.IsEmpty)
        {
            if (!Ascii.EqualsIgnoreCase(rest, "LAST"u8))
            {
                return new SmtpCommand { Verb = SmtpVerb.Bdat, Error = SmtpReplies.SyntaxBdat };
            }
            last = true;
        }
        if (sizeBytes.IsEmpty || sizeBytes.Length > 18 || sizeBytes.ContainsAnyExceptInRange((byte)'0', (byte)'9')
            || !Utf8Parser.TryParse(sizeBytes, out long size, out var consumed) || consumed != sizeBytes.Length)
        {
            return new SmtpCommand { Verb = SmtpVerb.Bdat, Error = SmtpReplies.SyntaxBdat };
        }
        return new SmtpCommand { Verb = SmtpVerb.Bdat, ChunkSize = size, Last = last };
    }

    /// <summary>"FROM:" / "TO:" case-insensitively; spaces after the colon are tolerated (common in the wild).</summary>
    private static bool TryStripPrefix(ref ReadOnlySpan<byte> args, ReadOnlySpan<byte> prefix)
    {
        if (args.Length < prefix.Length || !Ascii.EqualsIgnoreCase(args[..prefix.Length], prefix))
        {
            return false;
        }
        args = args[prefix.Length..].TrimStart((byte)' ').TrimEnd((byte)' ');
        return true;
    }

    private static bool TryDecode(ReadOnlySpan<byte> bytes, out string text)
    {
        if (Ascii.IsValid(bytes))
        {
            text = Encoding.ASCII.GetString(bytes);
            return true;
        }
        try
        {
            text = StrictUtf8.GetString(bytes);
            return true;
        }
        catch (DecoderFallbackException)
        {
            text = "";
            return false;
        }
    }
}
