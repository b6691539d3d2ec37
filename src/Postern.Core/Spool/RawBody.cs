using MimeKit;

namespace Postern.Core.Spool;

/// <summary>
/// The body of a <see cref="RawMessage"/> as a MIME entity: it writes the stored body bytes as they are and
/// is never parsed, prepared or re-encoded. MimeKit writes a message's body through its entity, and its DKIM and
/// ARC signers hash the body through it, so both see exactly the bytes Postern sends.
/// </summary>
internal sealed class RawBody : MimeEntity
{
    /// <summary>What a MIME visitor (MailKit's transfer-encoding check) sees for a body with 8-bit bytes: it then sends BODY=8BITMIME.</summary>
    private static readonly MimePart EightBitMarker = new() { ContentTransferEncoding = ContentEncoding.EightBit };

    private readonly RawMessage _raw;

    /// <param name="raw">The message whose body this is.</param>
    /// <param name="headers">Content-* fields of the message, for a signer that looks them up on the body; none when the entity only writes.</param>
    public RawBody(RawMessage raw, IEnumerable<Header> headers)
        : base(new ContentType("application", "octet-stream"))
    {
        _raw = raw;
        Headers.Clear();
        foreach (var header in headers)
            Headers.Add(header);
    }

    public override void Accept(MimeVisitor visitor)
    {
        if (_raw.HasEightBitData)
            visitor.Visit(EightBitMarker);
    }

    /// <summary>A relay passes the bytes on as they came: nothing to prepare.</summary>
    public override void Prepare(EncodingConstraint constraint, int maxLineLength = 78)
    {
    }

    /// <summary>The body bytes, and a line end when they lack one (SMTP data ends with CRLF before the dot).</summary>
    public override void WriteTo(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
    {
        using (var body = _raw.OpenBody())
            body.CopyTo(stream);
        if (!_raw.BodyEndsWithLineEnd)
            stream.Write("\r\n"u8);
    }

    public override async Task WriteToAsync(FormatOptions options, Stream stream, bool contentOnly, CancellationToken cancellationToken = default)
    {
        await using (var body = _raw.OpenBody())
            await body.CopyToAsync(stream, cancellationToken).ConfigureAwait(false);
        if (!_raw.BodyEndsWithLineEnd)
            await stream.WriteAsync("\r\n"u8.ToArray(), cancellationToken).ConfigureAwait(false);
    }
}
