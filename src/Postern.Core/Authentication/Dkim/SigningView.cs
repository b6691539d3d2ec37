using MimeKit;
using Postern.Core.Spool;

namespace Postern.Core.Authentication;

/// <summary>
/// A <see cref="MimeMessage"/> over a <see cref="RawMessage"/> for MimeKit's <see cref="MimeKit.Cryptography.DkimSigner"/>
/// and <see cref="MimeKit.Cryptography.ArcSigner"/>: each header field parsed from its stored bytes (the Content-*
/// ones on the body entity, where the signers look them up) and a body entity that is the stored body bytes. The
/// signers then hash exactly what Postern sends, and the fields they add are copied back onto the raw message.
/// </summary>
internal static class SigningView
{
    public static MimeMessage Create(RawMessage raw)
    {
        var message = new MimeMessage();
        message.Headers.Clear();
        var content = new List<Header>();
        for (var i = 0; i < raw.Fields.Count; i++)
        {
            // A line that is not a header field cannot be signed or looked up; it still goes out as it came.
            if (raw.NameOf(i) is null || !Header.TryParse(raw.Fields[i], out var header))
                continue;
            if (header.Field.StartsWith("Content-", StringComparison.OrdinalIgnoreCase))
                content.Add(header);
            else
                message.Headers.Add(header);
        }
        message.Body = new RawBody(raw, content);
        return message;
    }

    /// <summary>The field as it goes on the wire: name, colon, folded value, CRLF line ends (MimeKit folds with the platform's).</summary>
    public static byte[] ToBytes(Header header)
    {
        var bytes = new List<byte>(header.RawField.Length + header.RawValue.Length + 8);
        bytes.AddRange(header.RawField);
        bytes.Add((byte)':');
        foreach (var b in header.RawValue)
        {
            if (b == '\r')
                continue;
            if (b == '\n')
                bytes.Add((byte)'\r');
            bytes.Add(b);
        }
        return bytes.ToArray();
    }
}
