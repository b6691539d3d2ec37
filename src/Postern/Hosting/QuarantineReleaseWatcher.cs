using Microsoft.Extensions.Logging;
using Postern.Core;
using Postern.Core.Delivery;
using Postern.Core.Quarantine;
using Postern.Core.Spool;
using Postern.Core.Trace;

namespace Postern.Hosting;

/// <summary>What became of one release.</summary>
public enum ReleaseOutcome
{
    /// <summary>The copy is in the spool and handed to delivery.</summary>
    Released,

    /// <summary>Not held: already released, deleted, or no such message. Nothing to do.</summary>
    NotHeld,

    /// <summary>Failed before the spool had a copy; held again, so it can be released again.</summary>
    Failed,

    /// <summary>
    /// Stopped where the spool may or may not have the copy; the entry stays "releasing" until the next start
    /// settles it from what the spool recovers.
    /// </summary>
    Unsettled,
}

/// <summary>
/// Releases quarantined messages asked for with `postern quarantine release`: claims each one
/// (so it goes out exactly once, whichever request gets there first), spools it as a new
/// message and hands it to delivery like any other. On start it settles releases a crash interrupted.
/// </summary>
public sealed class QuarantineReleaseWatcher(QuarantineStore quarantine, MessageSpool spool, DeliveryScheduler scheduler, TraceWriter trace,
    ILogger<QuarantineReleaseWatcher> logger)
{
    /// <summary>
    /// Finishes the releases whose copy the spool recovered and holds the others again. Call after
    /// <see cref="MessageSpool.Recover"/> and before the scheduler starts on <paramref name="recovered"/>, so the
    /// trace records a finished copy's arrival before its delivery.
    /// </summary>
    public void RecoverInterruptedReleases(IReadOnlyList<SpooledMessage> recovered)
    {
        var spooled = recovered.ToDictionary(m => m.QueueId, StringComparer.Ordinal);
        foreach (var release in quarantine.RecoverInterruptedReleases(spooled.Keys.ToHashSet(StringComparer.Ordinal)))
        {
            if (release.Finished)
            {
                var copy = spooled[release.ReleasedAs!];
                WriteReleaseTrace(release.Entry.Id, copy);
                logger.LogInformation("Quarantine {Id}: release interrupted after spooling; finished, delivering as {QueueId}", release.Entry.Id, copy.QueueId);
            }
            else
            {
                logger.LogWarning("Quarantine {Id}: release interrupted before the message reached the spool; it is held again", release.Entry.Id);
            }
        }
    }

    public async Task WatchAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval);
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                foreach (var request in quarantine.PendingReleaseRequests())
                {
                    // An unsettled release keeps its request: once the next start settles it, the request is acted on again.
                    if (await ReleaseAsync(request.QuarantineId, cancellationToken).ConfigureAwait(false) != ReleaseOutcome.Unsettled)
                        quarantine.CompleteReleaseRequest(request.Id);
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Could not process quarantine release requests");
            }
        }
    }

    public async Task<ReleaseOutcome> ReleaseAsync(string id, CancellationToken cancellationToken)
    {
        if (!quarantine.TryClaimRelease(id, out var releaseAs))
            return NotClaimed(id);

        using var content = new MessageContent(spool.SpillDirectory);
        Envelope envelope;
        try
        {
            envelope = quarantine.Get(id).Envelope with { QueueId = releaseAs, ReceivedAt = DateTimeOffset.UtcNow };
            await using var stream = quarantine.OpenMessage(id);
            var buffer = new byte[64 * 1024];
            int read;
            while ((read = await stream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                await content.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            quarantine.ReturnClaim(id);
            logger.LogError(ex, "Quarantine {Id}: release failed; it stays held", id);
            return ReleaseOutcome.Failed;
        }

        SpooledMessage stored;
        try
        {
            stored = await spool.AppendAsync(envelope, ReadOnlyMemory<byte>.Empty, content, 0, cancellationToken).ConfigureAwait(false);
            // Only after this is the copy handed to delivery, so a copy whose entry is still "releasing" was never delivered.
            quarantine.MarkReleased(id, releaseAs);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Whether the spool has the copy is known for sure only from what it recovers: giving the claim back here
            // could send the message on twice.
            logger.LogError(ex, "Quarantine {Id}: release interrupted; it is settled (delivered once, or held again) when the node next starts", id);
            return ReleaseOutcome.Unsettled;
        }
        WriteReleaseTrace(id, stored);
        scheduler.Enqueue(stored);
        logger.LogInformation("Quarantine {Id}: released as {QueueId}", id, releaseAs);
        return ReleaseOutcome.Released;
    }

    private ReleaseOutcome NotClaimed(string id)
    {
        try
        {
            if (quarantine.Get(id).State == QuarantineStates.Releasing)
            {
                logger.LogDebug("Quarantine {Id}: release asked while an interrupted release is unsettled; kept for after the next start", id);
                return ReleaseOutcome.Unsettled;
            }
        }
        catch (PosternException)
        {
            // No such message: nothing to release.
        }
        logger.LogInformation("Quarantine {Id}: release asked, but it is not held (already released or deleted)", id);
        return ReleaseOutcome.NotHeld;
    }

    private void WriteReleaseTrace(string id, SpooledMessage copy)
    {
        trace.Write(new MessageReceived(copy.Envelope, copy.BodyLength, MessageStates.Queued, $"released from quarantine ({id})", "release"));
        trace.Write(new MessageStateChanged(id, DateTimeOffset.UtcNow, "released", $"released as {copy.QueueId}"));
    }
}
