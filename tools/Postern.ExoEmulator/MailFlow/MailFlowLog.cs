using System.Collections.Concurrent;
using System.Net;

namespace Postern.ExoEmulator.MailFlow;

/// <summary>A client connection to the front door and the certificate it presented (null: none, or no TLS).</summary>
public sealed record ConnectionRecord(DateTimeOffset At, string SessionId, IPAddress Client, bool Tls, string? CertificateSubject,
    IReadOnlyList<string> CertificateNames, string? CertificateThumbprint);

/// <summary>
/// One thing the transport did to a message: "received" (attributed to a tenant, and how), "refused", "rules",
/// "delivered" (to a mailbox), "relayed" (through a connector), "deferred", "internet" (left the service), "ndr".
/// </summary>
public sealed record MailEvent(DateTimeOffset At, string MessageId, string? Tenant, string What, string Detail)
{
    public override string ToString() => $"{At:HH:mm:ss.fff} {MessageId} {Tenant ?? "-"} {What}: {Detail}";
}

/// <summary>What the emulator's mail side saw and did, for tests and the demo.</summary>
public sealed class MailFlowLog
{
    private readonly ConcurrentQueue<ConnectionRecord> _connections = new();
    private readonly ConcurrentQueue<MailEvent> _events = new();

    public IReadOnlyList<ConnectionRecord> Connections => _connections.ToArray();

    public IReadOnlyList<MailEvent> Events => _events.ToArray();

    /// <summary>Raised for every event (the command-line emulator prints them).</summary>
    public event Action<MailEvent>? Recorded;

    internal void Add(ConnectionRecord connection) => _connections.Enqueue(connection);

    internal void Add(string messageId, string? tenant, string what, string detail)
    {
        var e = new MailEvent(DateTimeOffset.UtcNow, messageId, tenant, what, detail);
        _events.Enqueue(e);
        Recorded?.Invoke(e);
    }

    /// <summary>Events of messages whose Message-ID header or internal id is <paramref name="id"/>.</summary>
    public IReadOnlyList<MailEvent> For(string id) => [.. _events.Where(e => e.MessageId == id)];
}
