using System.Net;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace Postern.Smtp;

/// <summary>What is known about a client connection; read-only to the handler.</summary>
public sealed class SmtpSessionInfo
{
    public required string SessionId { get; init; }
    public required SmtpListenerOptions Listener { get; init; }
    public required IPEndPoint RemoteEndPoint { get; init; }
    public required IPEndPoint LocalEndPoint { get; init; }

    /// <summary>The name the client gave in EHLO/HELO, or null before it did.</summary>
    public string? HeloName { get; internal set; }

    public bool IsExtended { get; internal set; }

    public bool IsTls => TlsProtocol is not null;
    public SslProtocols? TlsProtocol { get; internal set; }
    public string? TlsCipher { get; internal set; }
    public X509Certificate2? ClientCertificate { get; internal set; }
}

/// <summary>One mail transaction: MAIL FROM, the accepted recipients, and handler state.</summary>
public sealed class SmtpTransaction
{
    public required SmtpAddress From { get; init; }

    /// <summary>SIZE= from MAIL FROM, when given.</summary>
    public long? DeclaredSize { get; init; }

    /// <summary>BODY=8BITMIME / 7BIT (BINARYMIME is refused at MAIL).</summary>
    public string? Body { get; init; }

    /// <summary>SMTPUTF8 was given on MAIL FROM.</summary>
    public bool SmtpUtf8 { get; init; }

    /// <summary>Recipients the handler accepted, in order.</summary>
    public List<SmtpAddress> Recipients { get; } = new();

    /// <summary>Whatever the handler wants to keep for this transaction (e.g. the tenant it belongs to).</summary>
    public object? State { get; set; }
}
