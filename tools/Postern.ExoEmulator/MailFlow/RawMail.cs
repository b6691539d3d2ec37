using System.Text;

namespace Postern.ExoEmulator.MailFlow;

/// <summary>One header field as it arrived: its name, and its value with the folding kept (after the colon, up to the final CRLF).</summary>
public sealed record HeaderField(string Name, string RawValue)
{
    /// <summary>The value unfolded and trimmed, as rules read it.</summary>
    public string Value => RawValue.Replace("\r\n", "", StringComparison.Ordinal).Trim();
}

/// <summary>
/// A message as the emulated transport carries it: the header fields in order and the body bytes untouched.
/// Fields the transport adds or a rule sets are written plainly; every other field leaves exactly as it came,
/// so the senders' DKIM signatures and Postern's ARC seal still verify after a pass through the tenant.
/// </summary>
public sealed class RawMail
{
    private RawMail(List<HeaderField> headers, ReadOnlyMemory<byte> body)
    {
        Headers = headers;
        Body = body;
    }

    public List<HeaderField> Headers { get; }

    /// <summary>Everything after the empty line that ends the header section.</summary>
    public ReadOnlyMemory<byte> Body { get; }

    public static RawMail Parse(ReadOnlyMemory<byte> message)
    {
        var span = message.Span;
        var end = span.IndexOf("\r\n\r\n"u8);
        int headerLength, bodyStart;
        if (span.StartsWith("\r\n"u8))
            (headerLength, bodyStart) = (0, 2);
        else if (end < 0)
            (headerLength, bodyStart) = (span.Length, span.Length);
        else
            (headerLength, bodyStart) = (end + 2, end + 4);
        var text = Encoding.UTF8.GetString(span[..headerLength]);
        var headers = new List<HeaderField>();
        foreach (var line in text.Split("\r\n"))
        {
            if (line.Length == 0)
                continue;
            if ((line[0] == ' ' || line[0] == '\t') && headers.Count > 0)
            {
                var last = headers[^1];
                headers[^1] = last with { RawValue = last.RawValue + "\r\n" + line };
                continue;
            }
            var colon = line.IndexOf(':');
            if (colon <= 0)
                continue; // Not a field (Exchange drops such lines as well).
            headers.Add(new HeaderField(line[..colon].TrimEnd(), line[(colon + 1)..]));
        }
        return new RawMail(headers, message[bodyStart..]);
    }

    public string? First(string name) => Headers.FirstOrDefault(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase))?.Value;

    public void Prepend(string name, string value) => Headers.Insert(0, new HeaderField(name, " " + value));

    /// <summary>The fields as (name, unfolded value) for the rules engine.</summary>
    public List<(string Name, string Value)> ForRules() => [.. Headers.Select(h => (h.Name, h.Value))];

    /// <summary>
    /// Takes the fields back from the rules engine: a field the rules left alone keeps its original form, a field
    /// they set is written as "Name: value".
    /// </summary>
    public void TakeFromRules(IReadOnlyList<(string Name, string Value)> fields)
    {
        var original = new List<HeaderField>(Headers);
        Headers.Clear();
        foreach (var (name, value) in fields)
        {
            var index = original.FindIndex(h => h.Name.Equals(name, StringComparison.Ordinal) && h.Value == value);
            if (index >= 0)
            {
                Headers.Add(original[index]);
                original.RemoveAt(index);
            }
            else
                Headers.Add(new HeaderField(name, " " + value));
        }
    }

    public RawMail Copy() => new([.. Headers], Body);

    public byte[] ToBytes()
    {
        var header = new StringBuilder();
        foreach (var field in Headers)
            header.Append(field.Name).Append(':').Append(field.RawValue).Append("\r\n");
        header.Append("\r\n");
        var head = Encoding.UTF8.GetBytes(header.ToString());
        var bytes = new byte[head.Length + Body.Length];
        head.CopyTo(bytes, 0);
        Body.Span.CopyTo(bytes.AsSpan(head.Length));
        return bytes;
    }
}
