using System.Globalization;
using System.Text;
using Postern.Core.Configuration;
using Postern.Core.Policy;
using Postern.Core.Spool;
using Postern.Smtp;

namespace Postern.Core.Relay;

/// <summary>
/// The header rewrite (Postfix's <c>cleanup</c>), in two halves around the scan. <see cref="Clean"/>, before it:
/// the relay key and forged Authentication-Results are removed, so no engine, log or trace sees them.
/// <see cref="TraceFields"/> and <see cref="HeadFor"/>, after it: Postern's Received line and the engines'
/// annotations on top, then each copy's verdict field and, when tagging, its tagged Subject. Every other byte stays
/// as it arrived.
/// </summary>
public sealed class CleanupStage(PosternOptions options)
{
    private readonly string _keyHeader = options.HeaderPrefix + "Key";
    private readonly string _authservId = options.Signing.ResolveArcDomain(options.ProductDomain);

    /// <summary>The received message without its relay key fields and without Authentication-Results claiming to be Postern's.</summary>
    public CleanMessage Clean(HeaderSection received, MessageContent content)
    {
        var section = received.Bytes;
        var output = new byte[section.Length];
        var at = 0;
        var from = 0;
        for (var i = 0; i < received.Fields.Count; i++)
        {
            var field = received.Fields[i];
            if (!string.Equals(field.Name, _keyHeader, StringComparison.OrdinalIgnoreCase) && !IsForgedResults(field.Name, received.FieldBytes(i)))
                continue;
            section[from..field.Start].CopyTo(output.AsSpan(at));
            at += field.Start - from;
            from = field.End;
        }
        section[from..].CopyTo(output.AsSpan(at));
        at += section.Length - from;
        return new CleanMessage(HeaderSection.Parse(output.AsSpan(0, at), complete: true), content, received.Length);
    }

    /// <summary>The fields every copy starts with: Postern's Received line (trace fields go on top, RFC 5321 §4.4), then the engines' annotations.</summary>
    public byte[] TraceFields(string queueId, DateTimeOffset receivedAt, IReadOnlyList<EnvelopeRecipient> recipients, SmtpSessionInfo session, bool smtpUtf8,
        IReadOnlyList<KeyValuePair<string, string>> annotations)
    {
        var output = new MemoryStream();
        output.Write(ReceivedLine(queueId, receivedAt, recipients, session, smtpUtf8));
        foreach (var (field, value) in annotations)
            output.Write(Field(field, value));
        return output.ToArray();
    }

    /// <summary>
    /// One copy's header section: <paramref name="traceFields"/>, the verdict field, the tagged Subject when the verdict
    /// tags one, then the cleaned section (without its Subject when that was replaced).
    /// </summary>
    public byte[] HeadFor(ReadOnlySpan<byte> traceFields, HeaderSection clean, Verdict verdict)
    {
        var verdictLine = Encoding.ASCII.GetBytes($"{options.HeaderPrefix}Verdict: {SanitizeHeader(verdict.Description)}\r\n");
        var subjectLine = verdict.Action == VerdictAction.Tag && !string.IsNullOrEmpty(verdict.SubjectTag) ? TaggedSubject(clean, verdict.SubjectTag) : null;
        var output = new byte[traceFields.Length + verdictLine.Length + (subjectLine?.Length ?? 0) + clean.Length];
        traceFields.CopyTo(output);
        var at = traceFields.Length;
        verdictLine.CopyTo(output, at);
        at += verdictLine.Length;
        var section = clean.Bytes;
        if (subjectLine is null)
        {
            section.CopyTo(output.AsSpan(at));
            return output;
        }
        subjectLine.CopyTo(output, at);
        at += subjectLine.Length;
        var from = 0;
        foreach (var i in clean.IndexesOf("Subject"))
        {
            var field = clean.Fields[i];
            section[from..field.Start].CopyTo(output.AsSpan(at));
            at += field.Start - from;
            from = field.End;
        }
        section[from..].CopyTo(output.AsSpan(at));
        at += section.Length - from;
        return output.AsSpan(0, at).ToArray();
    }

    /// <summary>The first Subject, RFC 2047-decoded and cut at 500 characters (for the trace and the tagged subject).</summary>
    public static string? Subject(HeaderSection headers)
    {
        var raw = headers.Values("Subject").FirstOrDefault();
        if (raw is null)
            return null;
        var decoded = MimeKit.Utils.Rfc2047.DecodeText(Encoding.UTF8.GetBytes(raw));
        return decoded.Length > 500 ? decoded[..500] : decoded;
    }

    /// <summary>An Authentication-Results field that claims to be Postern's but did not come from this pass: never trusted, never kept.</summary>
    private bool IsForgedResults(string? name, ReadOnlySpan<byte> field)
    {
        if (!string.Equals(name, "Authentication-Results", StringComparison.OrdinalIgnoreCase))
            return false;
        var value = HeaderSection.ValueOf(field).TrimStart();
        return value.StartsWith(_authservId, StringComparison.OrdinalIgnoreCase)
            && (value.Length == _authservId.Length || value[_authservId.Length] is ';' or ' ' or '\t');
    }

    private static byte[] TaggedSubject(HeaderSection headers, string tag) => Field("Subject", $"{tag} {Subject(headers) ?? ""}".TrimEnd());

    /// <summary>A field folded and encoded by MimeKit, with CRLF line ends (MimeKit's default is the platform's: a bare LF here).</summary>
    private static byte[] Field(string name, string value)
    {
        var header = new MimeKit.Header(name, "");
        header.SetValue(CrlfFormat, Encoding.UTF8, value);
        return [.. Encoding.ASCII.GetBytes(name + ":"), .. header.RawValue];
    }

    private static readonly MimeKit.FormatOptions CrlfFormat = CreateCrlfFormat();

    private static MimeKit.FormatOptions CreateCrlfFormat()
    {
        var format = MimeKit.FormatOptions.Default.Clone();
        format.NewLineFormat = MimeKit.NewLineFormat.Dos;
        return format;
    }

    private byte[] ReceivedLine(string queueId, DateTimeOffset receivedAt, IReadOnlyList<EnvelopeRecipient> recipients, SmtpSessionInfo session, bool smtpUtf8)
    {
        var protocol = (smtpUtf8 ? "UTF8SMTP" : session.IsExtended ? "ESMTP" : "SMTP") + (session.IsTls ? "S" : "");
        var tls = session.IsTls ? $"\r\n\t(using {session.TlsProtocol} with cipher {session.TlsCipher})" : "";
        var helo = Sanitize(session.HeloName ?? "unknown");
        var forClause = recipients.Count == 1 ? $"\r\n\tfor <{Sanitize(recipients[0].Address)}>" : "";
        var date = receivedAt.ToString("ddd, dd MMM yyyy HH:mm:ss +0000", CultureInfo.InvariantCulture);
        var line = $"Received: from {helo} ([{session.RemoteEndPoint.Address}]){tls}\r\n\tby {options.HostName} (Postern) with {protocol} id {queueId}{forClause};\r\n\t{date}\r\n";
        return Encoding.UTF8.GetBytes(line);
    }

    private static string SanitizeHeader(string value) => new(value.Where(c => c >= ' ' && c != 127).ToArray());

    private static string Sanitize(string value) =>
        new(value.Where(c => c > ' ' && c != '(' && c != ')' && c != ';' && c < 127 || c > 127).Take(255).ToArray());
}
