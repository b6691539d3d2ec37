using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Postern.Core.Delivery;
using Postern.Core.Policy;
using Postern.Core.Scanning;
using Postern.Core.Spool;
using Postern.Core.Trace;

namespace Postern.Core.Relay;

/// <summary>
/// Finishes dispatch records (<see cref="DispatchStage"/>) after the client's <c>250</c>: each part becomes its copy in
/// the spool, its quarantine entry or the DSN for its rejected recipients, and is then marked finished in the record.
/// Every step is idempotent — a part's results carry queue ids chosen before the 250 — so a part that failed is simply
/// redone later, and on start <see cref="Recover"/> redoes whatever a crash interrupted: nothing acknowledged is lost,
/// nothing is handed on twice.
/// </summary>
public sealed class DispatchFinisher(CleanupStage cleanup, MessageSpool spool, DeliveryScheduler scheduler, Quarantine.QuarantineStore quarantine,
    TenantLimits limits, TraceWriter trace, ILogger<DispatchFinisher> logger) : IAsyncDisposable
{
    private static readonly TimeSpan[] RetryDelays =
        [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(60)];

    private readonly Channel<Work> _work = Channel.CreateUnbounded<Work>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stopping = new();
    private Task? _loop;

    /// <summary>Queues a record just stored (the engines' findings go to the trace of its parts).</summary>
    public void Start(SpooledMessage record, IReadOnlyList<Finding>? findings) => _work.Writer.TryWrite(new Work(record, findings, new HashSet<string>(StringComparer.Ordinal)));

    /// <summary>
    /// Queues the records a previous process left unfinished. <paramref name="spooledQueueIds"/> are the messages the
    /// spool recovered: a part whose copy or DSN is among them was spooled before the crash and is not spooled again.
    /// </summary>
    public void Recover(IEnumerable<SpooledMessage> records, IReadOnlySet<string> spooledQueueIds)
    {
        foreach (var record in records)
            _work.Writer.TryWrite(new Work(record, null, new HashSet<string>(spooledQueueIds, StringComparer.Ordinal)));
    }

    /// <summary>Starts the worker that finishes queued records.</summary>
    public void Run() => _loop ??= Task.Run(LoopAsync);

    /// <summary>Hands on every part of <paramref name="record"/> not yet finished; throws when one could not be (the rest stay for a retry).</summary>
    internal async Task FinishAsync(SpooledMessage record, IReadOnlyList<Finding>? findings, HashSet<string> spooled, CancellationToken cancellationToken)
    {
        var plan = record.Envelope.Dispatch ?? throw new ArgumentException("Not a dispatch record.", nameof(record));
        using var body = await ReadAsync(record, cancellationToken).ConfigureAwait(false);
        var prefix = new byte[(int)Math.Min(body.Length, HeaderSection.MaxStoredLength)];
        body.CopyPrefix(prefix);
        var stored = HeaderSection.Parse(prefix, complete: body.Length <= HeaderSection.MaxStoredLength);
        var clean = HeaderSection.Parse(stored.Bytes[plan.StampAt..], complete: true);
        var traceFields = stored.Bytes[..plan.StampAt].ToArray();
        foreach (var part in plan.Parts)
        {
            var pending = record.PendingRecipients;
            if (!part.Recipients.Any(pending.Contains))
                continue;
            var envelope = record.Envelope with
            {
                QueueId = part.QueueId,
                Recipients = part.Recipients.Select(i => record.Envelope.Recipients[i]).ToArray(),
                Dispatch = null,
            };
            var head = cleanup.HeadFor(traceFields, clean, part.Verdict);
            await HandOnAsync(record, part, envelope, head, body, stored.Length, findings, spooled, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task HandOnAsync(SpooledMessage record, DispatchPart part, Envelope envelope, byte[] head, MessageContent body, int bodyOffset,
        IReadOnlyList<Finding>? findings, HashSet<string> spooled, CancellationToken cancellationToken)
    {
        var verdict = part.Verdict;
        switch (part.Action)
        {
            case VerdictAction.Quarantine:
                {
                    var held = quarantine.Hold(envelope, head, body, bodyOffset, part.Rule, part.Reason);
                    trace.Write(new MessageReceived(envelope, held.Size, MessageStates.Quarantined, $"quarantined by rule '{part.Rule}': {part.Reason}",
                        verdict.Description, findings));
                    logger.LogInformation("{QueueId}: quarantined by rule {Rule}", envelope.QueueId, part.Rule);
                    spool.Finish(record, part.Recipients);
                    return;
                }
            case VerdictAction.Reject:
                {
                    SpooledMessage? dsn = null;
                    if (part.BounceQueueId is { } bounceId && !spooled.Contains(bounceId))
                    {
                        trace.Write(new MessageReceived(envelope, body.Length, MessageStates.Refused, $"rejected by rule '{part.Rule}': {part.Reason}",
                            verdict.Description, findings));
                        // The client heard 250 for the other recipients, so the sender learns of these by a DSN.
                        var reply = $"550 5.7.1 Rejected by policy rule '{part.Rule}': {part.Reason}";
                        var failed = envelope.Recipients.Select(r => new RecipientResult(r.Address, RecipientOutcome.Failed, reply)).ToArray();
                        dsn = await scheduler.SpoolBounceAsync(envelope, () => DispatchStage.OpenCopy(head, body, bodyOffset), failed, bounceId, cancellationToken).ConfigureAwait(false);
                        spooled.Add(bounceId);
                    }
                    spool.Finish(record, part.Recipients);
                    if (dsn is not null)
                        scheduler.Enqueue(dsn);
                    return;
                }
            default:
                {
                    SpooledMessage? copy = null;
                    if (!spooled.Contains(part.QueueId))
                    {
                        copy = await spool.AppendAsync(envelope, head, body, bodyOffset, cancellationToken).ConfigureAwait(false);
                        spooled.Add(part.QueueId);
                        limits.Stored(copy);
                        trace.Write(new MessageReceived(envelope, copy.BodyLength, MessageStates.Queued, DispatchStage.Accepted(verdict), verdict.Description, findings));
                    }
                    // Finished in the record before delivery may start: a crash in between finds the copy in the spool, not a second one.
                    spool.Finish(record, part.Recipients);
                    if (copy is not null)
                        scheduler.Enqueue(copy);
                    return;
                }
        }
    }

    private async Task LoopAsync()
    {
        var token = _stopping.Token;
        try
        {
            await foreach (var work in _work.Reader.ReadAllAsync(token).ConfigureAwait(false))
            {
                try
                {
                    await FinishAsync(work.Record, work.Findings, work.Spooled, token).ConfigureAwait(false);
                }
                catch (Exception ex) when (!token.IsCancellationRequested)
                {
                    var delay = RetryDelays[Math.Min(work.Attempts, RetryDelays.Length - 1)];
                    logger.LogError(ex, "{Record}: could not finish the dispatch of an acknowledged message; retrying in {Delay}", work.Record.QueueId, delay);
                    _ = RetryLaterAsync(work with { Attempts = work.Attempts + 1 }, delay, token);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task RetryLaterAsync(Work work, TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            _work.Writer.TryWrite(work);
        }
        catch (OperationCanceledException)
        {
            // Shutting down: the record is still in the spool, and the next start finishes it.
        }
    }

    private async Task<MessageContent> ReadAsync(SpooledMessage record, CancellationToken cancellationToken)
    {
        var content = new MessageContent(spool.SpillDirectory);
        try
        {
            await using var stream = spool.OpenBody(record);
            var buffer = new byte[MessageContent.ChunkSize];
            int read;
            while ((read = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                await content.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
            return content;
        }
        catch
        {
            content.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _work.Writer.TryComplete();
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_loop is not null)
            await _loop.ConfigureAwait(false);
        _stopping.Dispose();
    }

    private sealed record Work(SpooledMessage Record, IReadOnlyList<Finding>? Findings, HashSet<string> Spooled, int Attempts = 0);
}
