using MimeKit;
using Postern.Core.Spool;
using Postern.Core.Tenants;

namespace Postern.Core.Scanning;

/// <summary>What an engine is given: the message parsed once, its raw bytes, and who it belongs to.</summary>
public sealed class ScanContext
{
    public required Envelope Envelope { get; init; }
    public required Tenant Tenant { get; init; }

    /// <summary>The message parsed by MimeKit (shared by all engines; do not modify).</summary>
    public required MimeMessage Message { get; init; }

    /// <summary>Opens the message bytes as cleanup left them, relay key removed (for engines that want the wire form, e.g. clamd, rspamd).</summary>
    public required Func<Stream> OpenRaw { get; init; }

    /// <summary>Opens the body as received (after the header section), for checks over the signed bytes such as DKIM's body hash; null when the caller has only the parsed message.</summary>
    public Func<Stream>? OpenBody { get; init; }

    public required long Size { get; init; }

    /// <summary>The tenant's protected domains (normalised), for look-alike checks.</summary>
    public IReadOnlyList<string> TenantDomains { get; init; } = [];

    /// <summary>Display names of the tenant's VIPs, for impersonation checks.</summary>
    public IReadOnlyList<string> Vips { get; init; } = [];

    /// <summary>"inbound" or "outbound".</summary>
    public string Direction => Envelope.Direction;

    private readonly List<KeyValuePair<string, string>> _annotations = new();

    /// <summary>Asks for a header field on every stored copy (e.g. Authentication-Results). Thread-safe.</summary>
    public void Annotate(string field, string value)
    {
        lock (_annotations)
            _annotations.Add(new(field, value));
    }

    /// <summary>Header fields engines asked for, in the order asked.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Annotations
    {
        get
        {
            lock (_annotations)
                return _annotations.ToArray();
        }
    }
}

/// <summary>A scanning engine. Engines never throw for a message they cannot scan: they return an
/// <see cref="FindingKinds.EngineUnavailable"/> finding, so policy decides (by default: defer, never pass unscanned).</summary>
public interface IScanEngine
{
    string Name { get; }

    /// <summary>
    /// Whether the engine reads only <see cref="ScanContext.OpenRaw"/>, never <see cref="ScanContext.Message"/>. Such
    /// engines run alongside the others; those that read the parsed message run one at a time, because MimeKit
    /// loads header-backed properties lazily and content streams share their position: two readers at once race.
    /// </summary>
    bool ReadsRawBytesOnly => false;

    ValueTask<IReadOnlyList<Finding>> ScanAsync(ScanContext context, CancellationToken cancellationToken);
}
