using MimeKit;
using Postern.Core.Spool;

namespace Postern.Core.Delivery;

/// <summary>
/// Hands a <see cref="RawMessage"/> to MailKit, which sends <see cref="MimeMessage"/>s, so that exactly its
/// bytes go out. MimeKit writes a message as its header fields, an empty line and its body entity: here the
/// whole header section is carried as the raw value of one header (named after the first field, whose bytes
/// are all written verbatim) and the body is an entity that copies the stored body bytes. Nothing is parsed
/// or re-encoded, so a body is never rewritten and the signatures added on top stay valid.
/// </summary>
internal static class WireMimeMessage
{
    public static MimeMessage Create(RawMessage raw)
    {
        var fields = raw.Fields;
        if (fields.Count == 0 || raw.NameOf(0) is not { } name)
            throw new InvalidOperationException("A message to send must start with a header field (Postern's Received line).");
        var first = fields[0];
        var colon = Array.IndexOf(first, (byte)':');
        var section = new MemoryStream();
        section.Write(first, colon + 1, first.Length - colon - 1);
        for (var i = 1; i < fields.Count; i++)
            section.Write(fields[i]);
        var bytes = section.ToArray();
        if (bytes.Length == 0 || bytes[^1] != '\n')
            bytes = [.. bytes, (byte)'\r', (byte)'\n'];

        var header = new Header(name, "");
        header.SetRawValue(bytes);
        var message = new MimeMessage();
        message.Headers.Clear();
        message.Headers.Add(header);
        message.Body = new WireBody(raw);
        return message;
    }

    /// <summary>Bytes MimeKit will write for <paramref name="raw"/>: the fields, the empty line, the body ended by a line end.</summary>
    public static long LengthOf(RawMessage raw)
    {
        var headers = raw.Fields.Sum(f => (long)f.Length);
        if (raw.Fields.Count > 0 && raw.Fields[^1][^1] != '\n')
            headers += 2;
        return headers + 2 + raw.BodyLength + (WireBody.EndsWithLineEnd(raw) ? 0 : 2);
    }

    /// <summary>The stored body as a MIME entity without headers of its own.</summary>
    private sealed class WireBody : MimeEntity
    {
        /// <summary>What MailKit's transfer-encoding check sees for a body with 8-bit bytes: it then sends BODY=8BITMIME.</summary>
        private static readonly MimePart EightBitMarker = new() { ContentTransferEncoding = ContentEncoding.EightBit };

        private readonly RawMessage _raw;

        public WireBody(RawMessage raw)
            : base(new ContentType("application", "octet-stream"))
        {
            _raw = raw;
            Headers.Clear();
        }

        public static bool EndsWithLineEnd(RawMessage raw)
        {
            if (raw.BodyLength == 0)
                return true;
            using var body = raw.OpenBody();
            body.Seek(-1, SeekOrigin.End);
            return body.ReadByte() == '\n';
        }

        public override void Accept(MimeVisitor visitor)
        {
            if (_raw.HasEightBitData)
                visitor.Visit(EightBitMarker);
        }

        /// <summary>MailKit asks for a re-encoding to fit the server; a relay passes the bytes on as they came.</summary>
        public override void Prepare(EncodingConstraint constraint, int maxLineLength = 78)
        {
        }

        /// <summary>The body bytes, and a line end when they lack one (SMTP data ends with CRLF before the dot).</summary>
        public override void WriteTo(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
        {
            using (var body = _raw.OpenBody())
                body.CopyTo(stream);
            if (!EndsWithLineEnd(_raw))
                stream.Write("\r\n"u8);
        }

        public override async Task WriteToAsync(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
        {
            await using (var body = _raw.OpenBody())
                await body.CopyToAsync(stream, cancellationToken).ConfigureAwait(false);
            if (!EndsWithLineEnd(_raw))
                await stream.WriteAsync("\r\n"u8.ToArray(), cancellationToken).ConfigureAwait(false);
        }
    }
}
