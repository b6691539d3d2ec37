using Postern.Core.Policy;
using Postern.Core.Scanning;
using Postern.Core.Spool;
using Postern.Core.Tenants;
using Postern.Smtp;

namespace Postern.Core.Relay;

/// <summary>
/// Recipients that share a verdict, and so one copy: the first part keeps the queue id the client is told.
/// <see cref="Indexes"/> are the part's recipients as indexes into the whole message's envelope.
/// </summary>
public sealed record MessagePart(Envelope Envelope, Verdict Verdict, IReadOnlyList<int> Indexes);

/// <summary>What the scan decided: the parts to dispatch, or the refusal when the message is deferred or every recipient rejects it.</summary>
public sealed record ScannedMessage(ScanResult Result, IReadOnlyList<MessagePart> Parts, Refusal? Refusal);

/// <summary>
/// The third stage: the engines and the tenant's policy look at the message as cleanup left it (no relay key) and give
/// a verdict per recipient. A defer for anyone defers the whole message (4xx); a reject for everyone refuses it (5xx);
/// otherwise recipients are grouped into parts by verdict.
/// </summary>
public sealed class ScanStage(IMessageScanner scanner)
{
    public async Task<ScannedMessage> RunAsync(Envelope envelope, Tenant tenant, CleanMessage message, RoutingTable table, CancellationToken cancellationToken)
    {
        var scan = await scanner.ScanAsync(new ScanRequest(envelope, tenant, message, table), cancellationToken).ConfigureAwait(false);
        var worst = scan.MostSevere;
        if (worst.Action == VerdictAction.Defer)
            return new ScannedMessage(scan, [], new Refusal(worst.Reply ?? new SmtpReply(451, "4.7.1", "Please try again later"),
                $"deferred by rule '{worst.Rule}': {worst.Reason}", tenant));
        if (scan.Verdicts.All(v => v.Action == VerdictAction.Reject))
            return new ScannedMessage(scan, [], new Refusal(worst.Reply ?? new SmtpReply(550, "5.7.1", "Message refused by policy"),
                $"rejected by rule '{worst.Rule}': {worst.Reason}", tenant));
        return new ScannedMessage(scan, Split(envelope, scan), null);
    }

    /// <summary>One part per distinct verdict; the first keeps the envelope's queue id, the others get their own.</summary>
    public static IReadOnlyList<MessagePart> Split(Envelope envelope, ScanResult scan)
    {
        var groups = Enumerable.Range(0, envelope.Recipients.Count)
            .GroupBy(i => (scan.Verdicts[i].Action, scan.Verdicts[i].Rule, scan.Verdicts[i].SubjectTag))
            .ToList();
        var parts = new List<MessagePart>(groups.Count);
        foreach (var group in groups)
        {
            var id = parts.Count == 0 ? envelope.QueueId : QueueId.New();
            var indexes = group.ToArray();
            parts.Add(new MessagePart(envelope with { QueueId = id, Recipients = indexes.Select(i => envelope.Recipients[i]).ToArray() },
                scan.Verdicts[indexes[0]], indexes));
        }
        return parts;
    }
}
