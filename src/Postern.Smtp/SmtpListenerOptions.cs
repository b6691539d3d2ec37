using System.Net;
using System.Security.Cryptography.X509Certificates;

namespace Postern.Smtp;

/// <summary>One listening socket and how it treats its clients.</summary>
public sealed class SmtpListenerOptions
{
    /// <summary>Name used in logs and passed to the handler (e.g. "m365").</summary>
    public string Name { get; init; } = "m365";

    public required IPEndPoint EndPoint { get; init; }

    /// <summary>Refuse MAIL until the client has done STARTTLS (530 5.7.0). The M365-facing listener does.</summary>
    public bool RequireTls { get; init; } = true;

    /// <summary>Certificate offered on STARTTLS; without one STARTTLS is not advertised.</summary>
    public X509Certificate2? Certificate { get; init; }

    /// <summary>Ask the client for its certificate (Exchange Online presents one); never required to be valid.</summary>
    public bool RequestClientCertificate { get; init; } = true;

    /// <summary>The host name in the greeting and EHLO reply.</summary>
    public string HostName { get; init; } = "postern.local";

    /// <summary>Free-form per-listener setting the handler may read (e.g. handoff mode).</summary>
    public bool Handoff { get; init; }

    /// <summary>
    /// Clients allowed to connect (IPv4 and IPv6 networks; IPv4-mapped IPv6 clients are matched as IPv4). Empty allows
    /// every client. Anyone else gets <c>554 5.7.1</c> in place of the greeting and is disconnected at once, before
    /// any session work (RFC 5321 §3.1).
    /// </summary>
    public IReadOnlyList<IPNetwork> AllowedClientNetworks { get; init; } = [];
}
