using System.Text.RegularExpressions;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>A received message as text, with just enough header parsing for assertions.</summary>
public sealed partial class MailText
{
    public MailText(string text)
    {
        Text = text.Replace("\r\n", "\n");
        var split = Text.IndexOf("\n\n", StringComparison.Ordinal);
        HeaderSection = split < 0 ? Text : Text[..(split + 1)];
        Body = split < 0 ? "" : Text[(split + 2)..];
        HeaderFields = ParseHeaders(HeaderSection);
    }

    public string Text { get; }
    public string HeaderSection { get; }
    public string Body { get; }

    /// <summary>(name, unfolded value) in order.</summary>
    public IReadOnlyList<(string Name, string Value)> HeaderFields { get; }

    public IReadOnlyList<string> Headers(string name)
        => HeaderFields.Where(h => h.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value).ToList();

    public string? Header(string name) => Headers(name).FirstOrDefault();

    public bool HasHeader(string name) => Headers(name).Count > 0;

    /// <summary>The " id X" of every Received header, top first.</summary>
    public IReadOnlyList<string> ReceivedIds()
        => Headers("Received").Select(r => ReceivedId().Match(r)).Where(m => m.Success).Select(m => m.Groups[1].Value).ToList();

    /// <summary>The id in the first Received header: Postern's queue id for a message Postern delivered straight to a sink.</summary>
    public string? FirstReceivedId()
        => Header("Received") is { } first && ReceivedId().Match(first) is { Success: true } m ? m.Groups[1].Value : null;

    public override string ToString() => Text;

    private static List<(string, string)> ParseHeaders(string section)
    {
        var fields = new List<(string, string)>();
        foreach (var line in section.Split('\n'))
        {
            if (line.Length == 0)
                continue;
            if ((line[0] == ' ' || line[0] == '\t') && fields.Count > 0)
            {
                var (n, v) = fields[^1];
                fields[^1] = (n, v + " " + line.Trim());
                continue;
            }
            var colon = line.IndexOf(':');
            if (colon <= 0)
                continue;
            fields.Add((line[..colon].Trim(), line[(colon + 1)..].Trim()));
        }
        return fields;
    }

    [GeneratedRegex(@"\sid\s+([^\s;]+)")]
    private static partial Regex ReceivedId();
}
