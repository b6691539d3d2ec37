using System.Security.Cryptography.X509Certificates;
using Postern.Core.Tenants;

namespace Postern.Core.Delivery;

/// <summary>One SMTP transaction to make: where to, with which TLS identity, and what to send.</summary>
public sealed record DeliveryRequest
{
    /// <summary>Servers in order: the first that accepts a connection is used, the others are fallbacks.</summary>
    public required IReadOnlyList<MtaAddress> Servers { get; init; }

    /// <summary>Whose message it is: tenants take the connections to a shared server in turn.</summary>
    public required Guid TenantId { get; init; }

    public required bool RequireTls { get; init; }
    public required X509Certificate2 ClientCertificate { get; init; }
    public required string MailFrom { get; init; }
    public required IReadOnlyList<string> Recipients { get; init; }

    /// <summary>Opens the stored message (seekable).</summary>
    public required Func<Stream> OpenMessage { get; init; }

    /// <summary>Header fields put on top of the message for this delivery only (e.g. the loop token).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> ExtraHeaders { get; init; } = [];

    /// <summary>Runs on the outgoing bytes after the extra headers are added: ARC seal or DKIM signature.</summary>
    public Func<Spool.RawMessage, CancellationToken, Task>? Prepare { get; init; }

    /// <summary>The message came with SMTPUTF8; it is passed on with it where the next hop offers it.</summary>
    public bool SmtpUtf8 { get; init; }

    /// <summary>Short label for logs and trace (queue id).</summary>
    public required string QueueId { get; init; }
}
