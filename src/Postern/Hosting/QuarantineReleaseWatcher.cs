using Microsoft.Extensions.Logging;
using Postern.Core.Delivery;
using Postern.Core.Quarantine;
using Postern.Core.Spool;
using Postern.Core.Trace;

namespace Postern.Hosting;

/// <summary>
/// Releases quarantined messages asked for with `postern quarantine release`: claims each one
/// (so it goes out exactly once, whichever node or request gets there first), spools it as a new
/// message and hands it to delivery like any other.
/// </summary>
public sealed class QuarantineReleaseWatcher(QuarantineStore quarantine, MessageSpool spool, DeliveryScheduler scheduler, TraceWriter trace,
    ILogger<QuarantineReleaseWatcher> logger)
{
    public async Task WatchAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval);
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                foreach (var id in quarantine.TakeReleaseRequests())
                    await ReleaseAsync(id, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Could not process quarantine release requests");
            }
        }
    }

    public async Task<string?> ReleaseAsync(string id, CancellationToken cancellationToken)
    {
        if (!quarantine.TryClaimRelease(id))
        {
            logger.LogInformation("Quarantine {Id}: release asked, but it is not held (already released or deleted)", id);
            return null;
        }
        try
        {
            var entry = quarantine.Get(id);
            var envelope = entry.Envelope with { QueueId = QueueId.New(), ReceivedAt = DateTimeOffset.UtcNow };
            using var content = new MessageContent(spool.SpillDirectory);
            await using (var stream = quarantine.OpenMessage(id))
            {
                var buffer = new byte[64 * 1024];
                int read;
                while ((read = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                    await content.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
            }
            var stored = await spool.AppendAsync(envelope, ReadOnlyMemory<byte>.Empty, content, 0, cancellationToken).ConfigureAwait(false);
            quarantine.MarkReleased(id, envelope.QueueId);
            trace.Write(new MessageReceived(envelope, stored.BodyLength, MessageStates.Queued, $"released from quarantine ({id})", "release"));
            trace.Write(new MessageStateChanged(id, DateTimeOffset.UtcNow, "released", $"released as {envelope.QueueId}"));
            scheduler.Enqueue(stored);
            logger.LogInformation("Quarantine {Id}: released as {QueueId}", id, envelope.QueueId);
            return envelope.QueueId;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            quarantine.ReturnClaim(id);
            logger.LogError(ex, "Quarantine {Id}: release failed; it stays held", id);
            return null;
        }
    }
}
