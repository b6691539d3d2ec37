using System.Buffers;

namespace Postern.Smtp.Internal;

internal enum DataScanResult
{
    /// <summary>Deliver the content before <c>contentEnd</c>, resume at <c>next</c> (a transparency dot was dropped).</summary>
    Content,

    /// <summary>Deliver the content before <c>contentEnd</c>; <c>next</c> is where unresolved bytes start: read more.</summary>
    NeedMoreData,

    /// <summary>Deliver the content before <c>contentEnd</c>; the message ended and <c>next</c> is just past ".\r\n".</summary>
    EndOfData,
}

/// <summary>
/// Finds the end of DATA and undoes dot-stuffing (RFC 5321 §4.5.2) over a <see cref="ReadOnlySequence{T}"/> without copying.
/// Only CRLF starts a line: the end is exactly CRLF "." CRLF, and a "." after a bare CR or LF is ordinary content,
/// which is what defeats SMTP smuggling (a "\n.\n" or "\r.\r" must never end a message here when a downstream
/// server would see it differently). Whether the content is acceptable (bare CR/LF, line length) is not decided
/// here but by <see cref="ContentChecker"/>, which BDAT content goes through too. So only a line that starts
/// with a dot needs any work here: the scan looks for CRLF "." with one vectorised search, not line by line.
/// </summary>
internal struct DataScanner
{
    private static ReadOnlySpan<byte> DotLineStart => "\r\n."u8;

    private bool _atLineStart;

    public DataScanner()
    {
        _atLineStart = true;
    }

    public DataScanResult Scan(in ReadOnlySequence<byte> buffer, out SequencePosition contentEnd, out SequencePosition next)
    {
        var r = new SequenceReader<byte>(buffer);
        while (true)
        {
            if (_atLineStart)
            {
                if (!r.TryPeek(out var first))
                {
                    contentEnd = next = r.Position;
                    return DataScanResult.NeedMoreData;
                }
                if (first == (byte)'.')
                {
                    var dot = r.Position;
                    if (!r.TryPeek(1, out var b1) || (b1 == (byte)'\r' && !r.TryPeek(2, out _)))
                    {
                        contentEnd = next = dot; // can't tell "." CRLF from a stuffed dot yet
                        return DataScanResult.NeedMoreData;
                    }
                    if (b1 == (byte)'\r' && r.TryPeek(2, out var b2) && b2 == (byte)'\n')
                    {
                        r.Advance(3);
                        contentEnd = dot;
                        next = r.Position;
                        return DataScanResult.EndOfData;
                    }
                    // A leading dot on any other line is transparency: drop it.
                    r.Advance(1);
                    _atLineStart = false;
                    contentEnd = dot;
                    next = r.Position;
                    return DataScanResult.Content;
                }
                _atLineStart = false;
            }

            var span = r.UnreadSpan;
            var at = span.IndexOf(DotLineStart);
            if (at >= 0)
            {
                r.Advance(at + 2);
                _atLineStart = true;
                continue;
            }
            // None within this span; one may still straddle the end of it, so its last CR or CRLF is looked at again.
            var tail = span.EndsWith("\r\n"u8) ? 2 : span.Length > 0 && span[^1] == (byte)'\r' ? 1 : 0;
            r.Advance(span.Length - tail);
            if (tail == 0)
            {
                if (r.End)
                {
                    contentEnd = next = r.Position;
                    return DataScanResult.NeedMoreData;
                }
                continue;
            }
            if (!r.TryPeek(1, out var afterCr))
            {
                contentEnd = next = r.Position; // the CR is resolved once the next byte arrives
                return DataScanResult.NeedMoreData;
            }
            if (afterCr == (byte)'\n')
            {
                r.Advance(2);
                _atLineStart = true; // the top of the loop looks for a dot, or asks for more
                continue;
            }
            r.Advance(1);
        }
    }
}
