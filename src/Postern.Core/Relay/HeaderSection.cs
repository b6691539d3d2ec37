using System.Text;

namespace Postern.Core.Relay;

/// <summary>One header field as found in the raw message: its name, unfolded value and byte range (CRLF included).</summary>
public readonly record struct RawHeader(string Name, string Value, int Start, int End);

/// <summary>
/// A light scan of a message's header section straight from the received bytes — enough to find
/// the relay key, loop tokens and hop count without parsing the MIME structure.
/// </summary>
public sealed class HeaderSection
{
    private HeaderSection(List<RawHeader> headers, int length)
    {
        Headers = headers;
        Length = length;
    }

    public IReadOnlyList<RawHeader> Headers { get; }

    /// <summary>Bytes of the header section including the blank line that ends it (0 when the message has no headers).</summary>
    public int Length { get; }

    /// <summary>Scans <paramref name="data"/>; null when no blank line ends the header section within it.</summary>
    public static HeaderSection? Parse(ReadOnlySpan<byte> data, bool complete)
    {
        var headers = new List<RawHeader>();
        var position = 0;
        while (true)
        {
            if (position >= data.Length)
                return complete ? new HeaderSection(headers, data.Length) : null;
            var rest = data[position..];
            if (rest.StartsWith("\r\n"u8))
                return new HeaderSection(headers, position + 2);
            var end = FindFieldEnd(rest);
            if (end < 0)
                return complete ? new HeaderSection(AddField(headers, rest, position, rest.Length), data.Length) : null;
            AddField(headers, rest[..end], position, end);
            position += end;
        }
    }

    /// <summary>Values of every field named <paramref name="name"/> (case-insensitive), trimmed.</summary>
    public IEnumerable<string> Values(string name) =>
        Headers.Where(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value.Trim());

    public int Count(string name) => Headers.Count(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase));

    /// <summary>Length of the field starting at the beginning of <paramref name="data"/>, through the CRLF of its last line.</summary>
    private static int FindFieldEnd(ReadOnlySpan<byte> data)
    {
        var offset = 0;
        while (true)
        {
            var lf = data[offset..].IndexOf((byte)'\n');
            if (lf < 0)
                return -1;
            var next = offset + lf + 1;
            if (next >= data.Length)
                return -1;
            if (data[next] != (byte)' ' && data[next] != (byte)'\t')
                return next;
            offset = next;
        }
    }

    private static List<RawHeader> AddField(List<RawHeader> headers, ReadOnlySpan<byte> field, int start, int length)
    {
        var colon = field.IndexOf((byte)':');
        if (colon <= 0)
            return headers;
        var name = Encoding.ASCII.GetString(field[..colon]).Trim();
        var value = Encoding.UTF8.GetString(field[(colon + 1)..]).Replace("\r\n", "").Replace("\n", "");
        headers.Add(new RawHeader(name, value, start, start + length));
        return headers;
    }
}
