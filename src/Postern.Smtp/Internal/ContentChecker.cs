namespace Postern.Smtp.Internal;

/// <summary>What <see cref="ContentChecker.Check"/> found in one piece of content.</summary>
internal enum ContentCheck
{
    /// <summary>Acceptable so far.</summary>
    Ok,

    /// <summary>Acceptable, and the empty line that ends the header section was in this piece.</summary>
    HeaderSectionComplete,

    /// <summary>The message must be refused with <see cref="ContentChecker.Failure"/>; nothing more of it need be looked at.</summary>
    Failed,
}

/// <summary>
/// The one place that decides whether message content is acceptable: bare CR or LF, text line length, message
/// size and header section size. DATA (after dot-unstuffing) and BDAT (its chunks as they are) feed it the same
/// content bytes in whatever pieces they arrive, so both paths get the same checks and the same replies, and its
/// line state carries across reads and chunks: a CRLF split between two chunks is one line end, and a CR at the
/// end of one piece is judged by the first byte of the next.
/// </summary>
internal struct ContentChecker
{
    private readonly int _maxLineContent;
    private readonly long _maxMessageSize;
    private readonly int _maxHeaderSection;
    private int _lineLength;
    private bool _pendingCr;
    private bool _inHeaderSection;

    public ContentChecker(SmtpLimits limits)
    {
        // The text line limit includes the CRLF (RFC 5321 §4.5.3.1.6), and not the dot doubled for transparency.
        _maxLineContent = Math.Max(1, limits.MaxTextLineLength - 2);
        _maxMessageSize = limits.MaxMessageSize;
        _maxHeaderSection = limits.MaxHeaderSectionSize;
        _lineLength = 0;
        _pendingCr = false;
        _inHeaderSection = true;
        Size = 0;
        Failure = null;
    }

    /// <summary>Octets of content seen so far.</summary>
    public long Size { get; private set; }

    /// <summary>Why the message is refused, once it is.</summary>
    public SmtpReply? Failure { get; private set; }

    /// <summary>Refuses up front a BDAT chunk that would take the message over the size limit, before its octets are read.</summary>
    public bool AdmitChunk(long chunkSize)
    {
        if (Failure is null && chunkSize > _maxMessageSize - Size)
        {
            Failure = SmtpReplies.MessageTooBig;
        }
        return Failure is null;
    }

    /// <summary>Looks at the next piece of content, in the order it arrived.</summary>
    public ContentCheck Check(ReadOnlySpan<byte> data)
    {
        if (Failure is not null)
        {
            return ContentCheck.Failed;
        }
        Size += data.Length;
        if (Size > _maxMessageSize)
        {
            return Fail(SmtpReplies.MessageTooBig);
        }
        var headerWasOpen = _inHeaderSection;
        var start = Size - data.Length;
        var i = 0;
        if (_pendingCr && data.Length > 0)
        {
            _pendingCr = false;
            if (data[0] == (byte)'\n')
            {
                EndLine(start + 1);
                i = 1;
            }
            else
            {
                Bare();
            }
        }
        while (i < data.Length && Failure is null)
        {
            var rest = data[i..];
            var end = rest.IndexOfAny((byte)'\r', (byte)'\n');
            if (end < 0)
            {
                AddToLine(rest.Length);
                break;
            }
            AddToLine(end);
            if (rest[end] == (byte)'\n')
            {
                Bare();
                i += end + 1;
            }
            else if (end + 1 == rest.Length)
            {
                _pendingCr = true; // resolved by the first byte of the next piece, or at the end
                break;
            }
            else if (rest[end + 1] == (byte)'\n')
            {
                i += end + 2;
                EndLine(start + i);
            }
            else
            {
                Bare();
                i += end + 1;
            }
        }
        if (Failure is null && _inHeaderSection && Size > _maxHeaderSection)
        {
            Fail(SmtpReplies.HeaderSectionTooLarge);
        }
        if (Failure is not null)
        {
            return ContentCheck.Failed;
        }
        return headerWasOpen && !_inHeaderSection ? ContentCheck.HeaderSectionComplete : ContentCheck.Ok;
    }

    /// <summary>The content ended: a CR still waiting for its LF is a bare one.</summary>
    public SmtpReply? Complete()
    {
        if (Failure is null && _pendingCr)
        {
            _pendingCr = false;
            Bare();
        }
        return Failure;
    }

    /// <summary>A CRLF ended a line; <paramref name="position"/> is the offset just past it.</summary>
    private void EndLine(long position)
    {
        if (_inHeaderSection && _lineLength == 0)
        {
            _inHeaderSection = false; // the first empty line ends the header section (RFC 5322 §2.1)
            if (position > _maxHeaderSection)
            {
                Fail(SmtpReplies.HeaderSectionTooLarge);
            }
        }
        _lineLength = 0;
    }

    // A lone CR or LF is a line end to some servers and not to others: the basis of SMTP smuggling.
    private void Bare() => Fail(SmtpReplies.BareLineEndingInContent);

    private void AddToLine(int count)
    {
        _lineLength = (int)Math.Min((long)_lineLength + count, int.MaxValue / 2);
        if (_lineLength > _maxLineContent)
        {
            Fail(SmtpReplies.TextLineTooLong);
        }
    }

    private ContentCheck Fail(SmtpReply reply)
    {
        Failure ??= reply;
        return ContentCheck.Failed;
    }
}
