using System.Text;

namespace Postern.Core.Spool;

/// <summary>
/// A message as bytes: its header fields, each kept exactly as stored (folding, odd spacing and
/// malformed lines included), and its body left where it is, in memory or in the spool file. Delivery
/// adds fields on top (signatures, the loop token) and sends these bytes as they are, so what Postern
/// signs is what it sends and a body is never rewritten on the way through.
/// </summary>
public sealed class RawMessage : IDisposable
{
    private readonly List<byte[]> _fields;
    private readonly List<string?> _names;
    private readonly Stream _source;
    private readonly long _bodyStart;
    private bool? _eightBit;
    private bool? _endsWithLineEnd;

    private readonly int _separator;

    private RawMessage(List<byte[]> fields, int separator, Stream source, long bodyStart)
    {
        _fields = fields;
        _names = fields.Select(NameOf).ToList();
        _separator = separator;
        _source = source;
        _bodyStart = bodyStart;
        BodyLength = source.Length - bodyStart;
    }

    /// <summary>The header fields in order, each through the line end of its last line.</summary>
    public IReadOnlyList<byte[]> Fields => _fields;

    /// <summary>Whether an empty line separates header and body (false only for a message that is all header).</summary>
    public bool HasSeparator => _separator > 0;

    public long BodyLength { get; }

    /// <summary>Bytes on the wire: the fields, the empty line, the body.</summary>
    public long Length => _fields.Sum(f => (long)f.Length) + _separator + BodyLength;

    /// <summary>Reads the header section of a seekable <paramref name="stream"/>; the body stays in it (the message owns the stream).</summary>
    public static RawMessage Load(Stream stream)
    {
        if (!stream.CanSeek)
            throw new ArgumentException("The message stream must be seekable.", nameof(stream));
        var start = stream.Position;
        var length = (int)Math.Min(stream.Length - start, HeaderSection.MaxStoredLength);
        ArraySegment<byte> prefix;
        if (stream is MemoryStream memory && memory.TryGetBuffer(out var buffer))
        {
            prefix = buffer.Slice((int)start, length);
        }
        else
        {
            // From a file, read only as far as the header section goes (a few KB), not the whole allowance.
            var read = new byte[Math.Min(length, 64 * 1024)];
            var filled = 0;
            while (true)
            {
                var n = stream.Read(read, filled, read.Length - filled);
                filled += n;
                var atEnd = filled == length || n == 0;
                var (found, end, blank) = SplitFields(read.AsSpan(0, filled), complete: atEnd && (n == 0 || start + length == stream.Length));
                if (blank > 0 || atEnd)
                    return new RawMessage(found, blank, stream, start + end + blank);
                if (filled == read.Length)
                    Array.Resize(ref read, Math.Min(length, read.Length * 2));
            }
        }
        var (fields, headerEnd, separator) = SplitFields(prefix, complete: start + length == stream.Length);
        return new RawMessage(fields, separator, stream, start + headerEnd + separator);
    }

    /// <summary>A message from bytes in memory.</summary>
    public static RawMessage Parse(byte[] message) => Load(new MemoryStream(message, writable: false));

    /// <summary>The name of field <paramref name="index"/>, or null for a line that is not a header field (no colon).</summary>
    public string? NameOf(int index) => _names[index];

    /// <summary>Indexes of the fields named <paramref name="name"/> (case-insensitive), top to bottom.</summary>
    public IEnumerable<int> IndexesOf(string name)
    {
        for (var i = 0; i < _names.Count; i++)
            if (string.Equals(_names[i], name, StringComparison.OrdinalIgnoreCase))
                yield return i;
    }

    /// <summary>The value of field <paramref name="index"/> after the colon, unfolded (line ends removed), decoded as UTF-8.</summary>
    public string ValueOf(int index) => HeaderSection.ValueOf(_fields[index]);

    /// <summary>Values of every field named <paramref name="name"/>, top to bottom.</summary>
    public IEnumerable<string> Values(string name) => IndexesOf(name).Select(ValueOf);

    public bool Contains(string name) => IndexesOf(name).Any();

    /// <summary>Adds a field (which must end with CRLF) at <paramref name="index"/>.</summary>
    public void Insert(int index, byte[] field)
    {
        if (field.Length < 2 || field[^2] != '\r' || field[^1] != '\n')
            throw new ArgumentException("A header field must end with CRLF.", nameof(field));
        _fields.Insert(index, field);
        _names.Insert(index, NameOf(field));
    }

    /// <summary>
    /// Makes every line end in the header fields CRLF: a bare LF becomes CRLF, which is what MimeKit writes for it
    /// anyway (a message's header fields always go out through its CRLF filter; the body is written as it is). Done
    /// before anything is counted or signed, so the size announced for <c>BDAT n LAST</c>, the bytes signed and the
    /// bytes written are the same. A bare CR is left alone, as MimeKit leaves it.
    /// </summary>
    public void UseCrlfLineEnds()
    {
        for (var i = 0; i < _fields.Count; i++)
        {
            var field = _fields[i];
            var bare = 0;
            for (var j = 0; j < field.Length; j++)
            {
                if (field[j] == '\n' && (j == 0 || field[j - 1] != '\r'))
                    bare++;
            }
            if (bare == 0)
                continue;
            var fixedField = new byte[field.Length + bare];
            var at = 0;
            for (var j = 0; j < field.Length; j++)
            {
                if (field[j] == '\n' && (j == 0 || field[j - 1] != '\r'))
                    fixedField[at++] = (byte)'\r';
                fixedField[at++] = field[j];
            }
            _fields[i] = fixedField;
        }
    }

    /// <summary>A "Name: value" field with CRLF; the value must already be folded and 7-bit or UTF-8 as the caller wants it sent.</summary>
    public static byte[] Field(string name, string value) => Encoding.UTF8.GetBytes($"{name}: {value}\r\n");

    /// <summary>A fresh read-only stream over the body (the bytes after the empty line).</summary>
    public Stream OpenBody()
    {
        if (_source is MemoryStream memory && memory.TryGetBuffer(out var buffer))
            return new MemoryStream(buffer.Array!, buffer.Offset + (int)_bodyStart, (int)BodyLength, writable: false);
        return new MimeKit.IO.BoundStream(_source, _bodyStart, _source.Length, leaveOpen: true);
    }

    /// <summary>Whether the body ends with a line end (an empty one does); read once.</summary>
    public bool BodyEndsWithLineEnd => _endsWithLineEnd ??= ComputeEndsWithLineEnd();

    /// <summary>Whether any byte of the message is outside 7-bit ASCII (for BODY=8BITMIME); read once.</summary>
    public bool HasEightBitData => _eightBit ??= ComputeEightBit();

    /// <summary>Writes the whole message.</summary>
    public void WriteTo(Stream output)
    {
        foreach (var field in _fields)
            output.Write(field);
        output.Write(_separator == 2 ? "\r\n"u8 : _separator == 1 ? "\n"u8 : []);
        using var body = OpenBody();
        body.CopyTo(output);
    }

    public byte[] ToArray()
    {
        using var output = new MemoryStream((int)Math.Min(Length, int.MaxValue));
        WriteTo(output);
        return output.ToArray();
    }

    public void Dispose() => _source.Dispose();

    private bool ComputeEndsWithLineEnd()
    {
        if (BodyLength == 0)
            return true;
        using var body = OpenBody();
        body.Seek(-1, SeekOrigin.End);
        return body.ReadByte() == '\n';
    }

    private bool ComputeEightBit()
    {
        if (_fields.Any(f => f.AsSpan().IndexOfAnyInRange((byte)0x80, (byte)0xFF) >= 0))
            return true;
        using var body = OpenBody();
        var buffer = new byte[64 * 1024];
        int read;
        while ((read = body.Read(buffer)) > 0)
            if (buffer.AsSpan(0, read).IndexOfAnyInRange((byte)0x80, (byte)0xFF) >= 0)
                return true;
        return false;
    }

    private static string? NameOf(byte[] field) => HeaderSection.NameOf(field);

    /// <summary>The header section's fields as separate arrays (they are edited), where the section ends and its empty line.</summary>
    private static (List<byte[]> Fields, int End, int Separator) SplitFields(ReadOnlySpan<byte> data, bool complete)
    {
        var ranges = new List<HeaderField>();
        var (end, separator, _) = HeaderSection.Scan(data, complete, ranges);
        var fields = new List<byte[]>(ranges.Count);
        foreach (var range in ranges)
            fields.Add(data[range.Start..range.End].ToArray());
        return (fields, end, separator);
    }
}
