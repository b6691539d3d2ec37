namespace Postern.Core.Tenants;

/// <summary>A next-hop mail server: host name or IP address, and port.</summary>
public sealed record MtaAddress(string Host, int Port)
{
    public const int DefaultPort = 25;

    /// <summary>Parses HOST, HOST:PORT, IPv4:PORT or [IPv6]:PORT.</summary>
    public static MtaAddress Parse(string value)
    {
        var text = value.Trim();
        string host;
        var port = DefaultPort;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']');
            if (close < 0)
                throw new PosternException($"'{value}' is not a valid MTA (expected [IPv6]:PORT)");
            host = text[1..close];
            var rest = text[(close + 1)..];
            if (rest.Length > 0)
                port = rest.StartsWith(':') ? ParsePort(rest[1..], value) : throw new PosternException($"'{value}' is not a valid MTA");
        }
        else
        {
            var colon = text.LastIndexOf(':');
            if (colon >= 0 && text.IndexOf(':') == colon)
            {
                host = text[..colon];
                port = ParsePort(text[(colon + 1)..], value);
            }
            else
            {
                host = text;
            }
        }
        if (System.Net.IPAddress.TryParse(host, out _))
            return new MtaAddress(host, port);
        var normal = DomainName.Normalize(host.TrimEnd('.'))
            ?? throw new PosternException($"'{value}' is not a valid MTA host name");
        return new MtaAddress(normal, port);
    }

    private static int ParsePort(string text, string value) =>
        int.TryParse(text, out var port) && port is > 0 and < 65536
            ? port
            : throw new PosternException($"'{value}' has an invalid port '{text}'");

    public override string ToString() =>
        Host.Contains(':') ? $"[{Host}]:{Port}" : $"{Host}:{Port}";
}
