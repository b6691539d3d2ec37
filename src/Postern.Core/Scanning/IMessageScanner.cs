using Postern.Core.Policy;
using Postern.Core.Spool;
using Postern.Core.Tenants;

namespace Postern.Core.Scanning;

/// <summary>
/// What the scanner is asked to look at: one received message of one tenant, before it is acknowledged, as cleanup
/// left it (the relay key removed: engines such as Rspamd can log and store headers).
/// </summary>
public sealed record ScanRequest(Envelope Envelope, Tenant Tenant, CleanMessage Message, RoutingTable Table);

/// <summary>Everything the engines found and, per recipient (index into the envelope), the policy's verdict.</summary>
public sealed record ScanResult(IReadOnlyList<Finding> Findings, IReadOnlyList<Verdict> Verdicts)
{
    /// <summary>Header fields the engines want on the stored message (Authentication-Results).</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; } = [];

    /// <summary>The verdict that decides the SMTP reply: the most severe across recipients.</summary>
    public Verdict MostSevere => Verdicts.MaxBy(v => v.Severity) ?? Verdict.Clean;
}

/// <summary>The place in the relay where scanning happens: after authentication, before the message is acknowledged.</summary>
public interface IMessageScanner
{
    ValueTask<ScanResult> ScanAsync(ScanRequest request, CancellationToken cancellationToken);
}

/// <summary>Passes every message without looking (for relays that scan elsewhere, and for tests of the relay itself).</summary>
public sealed class PassThroughScanner : IMessageScanner
{
    public ValueTask<ScanResult> ScanAsync(ScanRequest request, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new ScanResult([], request.Envelope.Recipients.Select(_ => Verdict.Clean).ToArray()));
}
