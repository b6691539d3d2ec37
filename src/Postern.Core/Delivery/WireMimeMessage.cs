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
        // This constructor adds no header of its own (the parameterless one formats a Date and generates a
        // Message-Id, only for them to be cleared again).
        IEnumerable<Header> headers = [header];
        return new MimeMessage(headers) { Body = new RawBody(raw, []) };
    }

    /// <summary>Bytes MimeKit will write for <paramref name="raw"/>: the fields, the empty line, the body ended by a line end.</summary>
    public static long LengthOf(RawMessage raw)
    {
        var headers = raw.Fields.Sum(f => (long)f.Length);
        if (raw.Fields.Count > 0 && raw.Fields[^1][^1] != '\n')
            headers += 2;
        return headers + 2 + raw.BodyLength + (raw.BodyEndsWithLineEnd ? 0 : 2);
    }
}
