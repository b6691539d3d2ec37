using System.Text;

namespace Postern.Core.Spool;

/// <summary>One header field as it lies in the message bytes: its name (null for a line that is not a field) and byte range.</summary>
public readonly record struct HeaderField(string? Name, int Start, int End)
{
    public int Length => End - Start;
}

/// <summary>
/// The one header-section parser of the relay: the relay reads received messages with it, delivery reads stored
/// ones, so both agree on where every field starts and ends. A field is a line and the lines after it that start
/// with space or tab; every byte lands in a field (malformed lines included), so nothing is lost or reordered.
/// </summary>
public sealed class HeaderSection
{
    /// <summary>
    /// How large a received header section may be (real ones are a few KB). The host gives it to the SMTP server as
    /// <c>SmtpLimits.MaxHeaderSectionSize</c>, which refuses a larger one while it arrives, before anything is stored.
    /// </summary>
    public const int MaxReceivedLength = 1024 * 1024;

    /// <summary>How large a stored one may be: a received section plus room for the fields Postern puts above it.</summary>
    public const int MaxStoredLength = 2 * MaxReceivedLength;

    private readonly byte[] _bytes;
    private readonly List<HeaderField> _fields;

    private HeaderSection(byte[] bytes, List<HeaderField> fields, int end, int separator, bool ended)
    {
        _bytes = bytes;
        _fields = fields;
        FieldsEnd = end;
        SeparatorLength = separator;
        Ended = ended;
    }

    public IReadOnlyList<HeaderField> Fields => _fields;

    /// <summary>Where the last field ends (the empty line, if any, starts here).</summary>
    public int FieldsEnd { get; }

    /// <summary>Length of the empty line that ends the section: 2 (CRLF), 1 (bare LF) or 0 (none: the message is all header).</summary>
    public int SeparatorLength { get; }

    /// <summary>Bytes of the header section including the empty line that ends it.</summary>
    public int Length => FieldsEnd + SeparatorLength;

    /// <summary>Whether the section's end was found: an empty line, or the end of the whole message.</summary>
    public bool Ended { get; }

    /// <summary>The section's bytes, fields and empty line.</summary>
    public ReadOnlySpan<byte> Bytes => _bytes;

    /// <summary>Parses the start of <paramref name="data"/>; <paramref name="complete"/> says it is the whole message.</summary>
    public static HeaderSection Parse(ReadOnlySpan<byte> data, bool complete)
    {
        var fields = new List<HeaderField>();
        var (end, separator, ended) = Scan(data, complete, fields);
        return new HeaderSection(data[..(end + separator)].ToArray(), fields, end, separator, ended);
    }

    /// <summary>
    /// Splits the start of <paramref name="data"/> into <paramref name="fields"/>: returns where the fields end, the
    /// length of the empty line after them, and whether the section ended within <paramref name="data"/>.
    /// </summary>
    public static (int End, int Separator, bool Ended) Scan(ReadOnlySpan<byte> data, bool complete, List<HeaderField> fields)
    {
        var position = 0;
        var fieldStart = 0;
        while (position < data.Length)
        {
            var rest = data[position..];
            var separator = rest.StartsWith("\r\n"u8) ? 2 : rest[0] == '\n' ? 1 : 0;
            if (separator > 0)
            {
                Close(fields, data, fieldStart, position);
                return (position, separator, true);
            }
            if (position > fieldStart && rest[0] is not ((byte)' ' or (byte)'\t'))
            {
                Close(fields, data, fieldStart, position);
                fieldStart = position;
            }
            var lf = rest.IndexOf((byte)'\n');
            if (lf < 0)
            {
                // A last line without a line end: all header when the message ends here, else where the body begins.
                if (complete)
                    position = data.Length;
                break;
            }
            position += lf + 1;
        }
        Close(fields, data, fieldStart, position);
        return (position, 0, complete);
    }

    /// <summary>The bytes of field <paramref name="index"/>, through the line end of its last line.</summary>
    public ReadOnlySpan<byte> FieldBytes(int index) => _bytes.AsSpan(_fields[index].Start, _fields[index].Length);

    /// <summary>Indexes of the fields named <paramref name="name"/> (case-insensitive), top to bottom.</summary>
    public IEnumerable<int> IndexesOf(string name)
    {
        for (var i = 0; i < _fields.Count; i++)
            if (string.Equals(_fields[i].Name, name, StringComparison.OrdinalIgnoreCase))
                yield return i;
    }

    /// <summary>Values of every field named <paramref name="name"/>, unfolded and trimmed, top to bottom.</summary>
    public IEnumerable<string> Values(string name) => IndexesOf(name).Select(i => ValueOf(FieldBytes(i)).Trim());

    public int Count(string name) => IndexesOf(name).Count();

    /// <summary>The value of a field after its colon, unfolded (line ends removed), decoded as UTF-8.</summary>
    public static string ValueOf(ReadOnlySpan<byte> field)
    {
        var colon = field.IndexOf((byte)':');
        return colon < 0 ? "" : Encoding.UTF8.GetString(field[(colon + 1)..]).Replace("\r", "").Replace("\n", "");
    }

    /// <summary>A field's name: the text before the colon, or null when that is empty or holds white space (not a field).</summary>
    public static string? NameOf(ReadOnlySpan<byte> field)
    {
        var colon = field.IndexOf((byte)':');
        if (colon <= 0)
            return null;
        var name = field[..colon].TrimEnd(" \t"u8);
        return name.Length == 0 || name.IndexOfAny(" \t\r\n"u8) >= 0 ? null : Encoding.ASCII.GetString(name);
    }

    private static void Close(List<HeaderField> fields, ReadOnlySpan<byte> data, int start, int end)
    {
        if (end > start)
            fields.Add(new HeaderField(NameOf(data[start..end]), start, end));
    }
}
