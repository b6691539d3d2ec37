using Microsoft.Extensions.Logging;
using Postern.Core.Delivery;
using Postern.Core.Policy;
using Postern.Core.Scanning;
using Postern.Core.Spool;
using Postern.Core.Trace;
using Postern.Smtp;

namespace Postern.Core.Relay;

/// <summary>
/// The last stage: hands the message on, all or nothing towards the client. One part to deliver is spooled as its copy
/// (or, on a handoff listener, delivered before the reply): that one record is already all or nothing, and a dispatch
/// record would write the commonest message twice. Anything else — recipients with different verdicts,
/// quarantine, DSNs for rejected recipients — is stored once as a dispatch record (<see cref="Envelope.Dispatch"/>);
/// after its fsync the client gets <c>250</c> and <see cref="DispatchFinisher"/> derives the parts from it. Either
/// the one record is on disk and the answer is <c>250</c>, or nothing is and it is <c>451 4.3.0</c>.
/// </summary>
public sealed class DispatchStage(CleanupStage cleanup, MessageSpool spool, DeliveryScheduler scheduler, DispatchFinisher finisher, TenantLimits limits,
    TraceWriter trace, ILogger logger)
{
    private static readonly SmtpReply StoreFailed = new(451, "4.3.0", "Could not store the message; please try again later");

    /// <summary>
    /// Stores the message's parts (<paramref name="envelope"/> is the whole message's; its queue id is the first part's),
    /// each copy starting with <paramref name="traceFields"/> (<see cref="CleanupStage.TraceFields"/>), and answers.
    /// </summary>
    public async Task<SmtpReply> RunAsync(Envelope envelope, string tenantName, CleanMessage message, byte[] traceFields, ScannedMessage scanned, bool handoff,
        CancellationToken cancellationToken)
    {
        var parts = scanned.Parts;
        var single = parts.Count == 1 && parts[0].Verdict.Action is VerdictAction.Deliver or VerdictAction.Tag ? parts[0] : null;
        try
        {
            if (single is null)
                return await StoreRecordAsync(envelope, message, traceFields, scanned, cancellationToken).ConfigureAwait(false);
            var head = cleanup.HeadFor(traceFields, message.Headers, single.Verdict);
            if (handoff)
                return await HandOffAsync(single.Envelope, head, message, scanned.Result, cancellationToken).ConfigureAwait(false);
            var stored = await spool.AppendAsync(single.Envelope, head, message.Content, message.BodyOffset, cancellationToken).ConfigureAwait(false);
            limits.Stored(stored);
            trace.Write(new MessageReceived(single.Envelope, stored.BodyLength, MessageStates.Queued, Accepted(single.Verdict), single.Verdict.Description,
                scanned.Result.Findings));
            scheduler.Enqueue(stored);
            RelayLog.Accepted(logger, envelope.QueueId, envelope.Client, tenantName, envelope.Direction, envelope.Recipients.Count, stored.BodyLength,
                single.Verdict.Description);
            return new SmtpReply(250, "2.0.0", $"Ok: queued as {envelope.QueueId}");
        }
        catch (IOException ex)
        {
            logger.LogError(ex, "{QueueId}: could not store a message from {Client}", envelope.QueueId, envelope.Client);
            return StoreFailed;
        }
    }

    /// <summary>"accepted", or why it was tagged: the trace reason of a delivered copy.</summary>
    public static string Accepted(Verdict verdict) =>
        verdict.Action == VerdictAction.Tag ? $"tagged by rule '{verdict.Rule}': {verdict.Reason}" : "accepted";

    /// <summary>One record holds every part; once it is on disk the parts are derived from it, after the reply.</summary>
    private async Task<SmtpReply> StoreRecordAsync(Envelope envelope, CleanMessage message, byte[] traceFields, ScannedMessage scanned, CancellationToken cancellationToken)
    {
        var plan = new DispatchPlan(traceFields.Length, scanned.Parts.Select(p => new DispatchPart(p.Envelope.QueueId, p.Indexes, p.Verdict.Action, p.Verdict.Rule,
            p.Verdict.Reason, p.Verdict.SubjectTag, p.Verdict.Action == VerdictAction.Reject ? QueueId.New() : null)).ToArray());
        // The record has its own queue id: the first part's copy is spooled under the one the client is told.
        var record = envelope with { QueueId = QueueId.New(), Dispatch = plan };
        byte[] head = [.. traceFields, .. message.Headers.Bytes];
        var stored = await spool.AppendAsync(record, head, message.Content, message.BodyOffset, cancellationToken).ConfigureAwait(false);
        limits.Stored(stored);
        finisher.Start(stored, scanned.Result.Findings);
        return new SmtpReply(250, "2.0.0", $"Ok: queued as {envelope.QueueId}");
    }

    private async Task<SmtpReply> HandOffAsync(Envelope envelope, byte[] head, CleanMessage message, ScanResult scan, CancellationToken cancellationToken)
    {
        var bodyLength = head.Length + message.Content.Length - message.BodyOffset;
        var results = await scheduler.DeliverNowAsync(envelope, () => OpenCopy(head, message.Content, message.BodyOffset), cancellationToken).ConfigureAwait(false);
        trace.Write(new MessageReceived(envelope, bodyLength, MessageStates.Queued, "handoff", scan.MostSevere.Description, scan.Findings));
        if (results.All(r => r.Result.Outcome == RecipientOutcome.Delivered))
        {
            trace.Write(new MessageStateChanged(envelope.QueueId, DateTimeOffset.UtcNow, MessageStates.Delivered, results[^1].Result.Reply));
            return new SmtpReply(250, "2.0.0", $"Ok: delivered as {envelope.QueueId}");
        }
        if (results.Any(r => r.Result.Outcome == RecipientOutcome.Delivered))
        {
            // Some recipients have it already: queue the rest rather than make the client send everyone a duplicate.
            var done = results.Where(r => r.Result.Outcome != RecipientOutcome.Deferred).Select(r => r.Index).ToArray();
            var stored = await spool.AppendAsync(envelope, head, message.Content, message.BodyOffset, cancellationToken).ConfigureAwait(false);
            limits.Stored(stored);
            spool.Finish(stored, done);
            scheduler.Enqueue(stored);
            return new SmtpReply(250, "2.0.0", $"Ok: queued as {envelope.QueueId} (partly delivered)");
        }
        var first = results[0].Result;
        trace.Write(new MessageStateChanged(envelope.QueueId, DateTimeOffset.UtcNow, MessageStates.Refused, first.Reply));
        return first.Outcome == RecipientOutcome.Failed
            ? new SmtpReply(554, "5.4.0", $"Next hop refused the message: {Truncate(first.Reply)}")
            : new SmtpReply(451, "4.4.1", $"Next hop did not accept the message; try again later: {Truncate(first.Reply)}");
    }

    /// <summary>A copy as it would be stored: <paramref name="head"/>, then <paramref name="content"/> from <paramref name="bodyOffset"/>.</summary>
    internal static MemoryStream OpenCopy(byte[] head, MessageContent content, long bodyOffset)
    {
        var stream = new MemoryStream((int)Math.Min(head.Length + content.Length - bodyOffset, int.MaxValue));
        stream.Write(head);
        using (var rest = content.OpenRead(bodyOffset))
            rest.CopyTo(stream);
        stream.Position = 0;
        return stream;
    }

    private static string Truncate(string text) => text.Length > 200 ? text[..200] : text.Replace("\r", " ").Replace("\n", " ");
}
