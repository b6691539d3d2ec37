namespace Postern.Core.Spool;

/// <summary>
/// A received message as every stage after cleanup sees it: its header section as cleanup left it (the relay key and
/// forged results removed), then the body where it was received. The engines read this, never the raw bytes, so no
/// engine, log or trace sees the key.
/// </summary>
public sealed class CleanMessage
{
    /// <param name="headers">The cleaned header section, empty line included.</param>
    /// <param name="content">The message as received.</param>
    /// <param name="bodyOffset">Where the body starts in <paramref name="content"/> (after the received header section).</param>
    public CleanMessage(HeaderSection headers, MessageContent content, long bodyOffset)
    {
        Headers = headers;
        Content = content;
        BodyOffset = bodyOffset;
    }

    public HeaderSection Headers { get; }

    public MessageContent Content { get; }

    public long BodyOffset { get; }

    /// <summary>Bytes of the cleaned message.</summary>
    public long Length => Headers.Length + Content.Length - BodyOffset;

    /// <summary>A read-only stream over the cleaned message: the cleaned header section, then the received body.</summary>
    public Stream OpenRead()
    {
        if (Content.IsSpilled)
        {
            var chained = new MimeKit.IO.ChainedStream();
            chained.Add(new MemoryStream(Headers.Bytes.ToArray(), writable: false));
            chained.Add(Content.OpenRead(BodyOffset));
            return chained;
        }
        var copy = new MemoryStream((int)Length);
        copy.Write(Headers.Bytes);
        foreach (var segment in Content.Segments(BodyOffset))
            copy.Write(segment.Span);
        copy.Position = 0;
        return copy;
    }
}
