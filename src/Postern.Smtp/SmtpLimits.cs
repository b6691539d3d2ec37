namespace Postern.Smtp;

/// <summary>Protocol limits of the server; defaults follow RFC 5321 and Exchange Online.</summary>
public sealed class SmtpLimits
{
    /// <summary>Longest command line, CRLF included (RFC 5321 §4.5.3.1.4).</summary>
    public int MaxCommandLineLength { get; init; } = 512;

    /// <summary>Longest line of message text in DATA, CRLF included (RFC 5321 §4.5.3.1.6).</summary>
    public int MaxTextLineLength { get; init; } = 1000;

    /// <summary>Largest message accepted, advertised in SIZE. Exchange Online's limit is 150 MB.</summary>
    public long MaxMessageSize { get; init; } = 150L * 1024 * 1024;

    /// <summary>
    /// Largest header section (up to and including the empty line that ends it). Over it, the message is refused
    /// (554 5.6.0) and the rest of its content discarded, so a header section that never ends is never stored.
    /// </summary>
    public int MaxHeaderSectionSize { get; init; } = 1024 * 1024;

    public int MaxRecipients { get; init; } = 1000;

    /// <summary>Commands allowed without a message being accepted before the session is closed (421 4.7.0).</summary>
    public int MaxCommandsWithoutProgress { get; init; } = 100;

    /// <summary>Errors (4xx/5xx replies to bad commands) before the session is closed.</summary>
    public int MaxErrors { get; init; } = 20;

    /// <summary>Time the server waits for the next command or data chunk.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Longest a whole session may last.</summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>Open connections allowed from one IPv4 address, or from one IPv6 /64 (a single host usually has a whole /64).</summary>
    public int MaxConnectionsPerIp { get; init; } = 200;

    public int MaxConnections { get; init; } = 5000;
}
