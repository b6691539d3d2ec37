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

    public int MaxRecipients { get; init; } = 1000;

    /// <summary>Commands allowed without a message being accepted before the session is closed (421 4.7.0).</summary>
    public int MaxCommandsWithoutProgress { get; init; } = 100;

    /// <summary>Errors (4xx/5xx replies to bad commands) before the session is closed.</summary>
    public int MaxErrors { get; init; } = 20;

    /// <summary>Time the server waits for the next command or data chunk.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Longest a whole session may last.</summary>
    public TimeSpan SessionTimeout { get; init; } = TimeSpan.FromMinutes(30);

    public int MaxConnectionsPerIp { get; init; } = 200;

    public int MaxConnections { get; init; } = 5000;
}
