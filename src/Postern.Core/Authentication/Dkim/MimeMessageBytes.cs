using MimeKit;
using Postern.Core.Spool;

namespace Postern.Core.Authentication;

/// <summary>
/// Bridges MimeKit messages and the raw bytes Postern signs: a <see cref="MimeMessage"/> as MimeKit writes it
/// (CRLF line ends), and a signed field back as a MimeKit <see cref="Header"/> with its bytes unchanged.
/// </summary>
internal static class MimeMessageBytes
{
    public static RawMessage ToRaw(MimeMessage message)
    {
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        var wire = new MemoryStream();
        message.WriteTo(options, wire);
        return RawMessage.Parse(wire.ToArray());
    }

    public static MimeMessage ToMimeMessage(RawMessage message) => MimeMessage.Load(new MemoryStream(message.ToArray(), writable: false));

    /// <summary>A field Postern wrote (name, colon, folded value, CRLF) as a header MimeKit writes back byte for byte.</summary>
    public static Header ToHeader(byte[] field) =>
        Header.TryParse(field, out var header) ? header : throw new InvalidOperationException("Postern wrote a header field MimeKit cannot read.");
}
