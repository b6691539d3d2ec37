namespace Postern.Core.Spool;

/// <summary>
/// The durable queue as the queue manager (<see cref="Delivery.DeliveryScheduler"/>) sees it: batch commit,
/// claim, finish and read back. <see cref="MessageSpool"/> keeps it in segment files on local disk; a shared
/// queue (PostgreSQL) is a second implementation of this interface, not a change to the scheduler.
/// </summary>
/// <remarks>
/// A message is either <em>claimed</em> (the scheduler holds it in memory, queued for or in delivery) or
/// <em>waiting</em> in the store until a time (deferred, or left there because the scheduler's in-memory queue
/// was full). Waiting messages keep nothing of their content in memory.
/// </remarks>
public interface IQueueStore
{
    /// <summary>Where message content larger than memory allows is kept while it is built (e.g. a bounce).</summary>
    string SpillDirectory { get; }

    /// <summary>Stores a message durably: completes once it is committed with its batch. The message comes back claimed.</summary>
    Task<SpooledMessage> AppendAsync(Envelope envelope, ReadOnlyMemory<byte> head, MessageContent content, long contentOffset, CancellationToken cancellationToken);

    /// <summary>
    /// Claims up to <paramref name="max"/> waiting messages due at <paramref name="now"/>, taking tenants in turn.
    /// <paramref name="admit"/>, when given, is asked once for each message about to be claimed: false leaves it
    /// waiting and passes over the rest of that tenant's for this claim (the tenant has its share in memory).
    /// </summary>
    IReadOnlyList<SpooledMessage> Claim(DateTimeOffset now, int max, Func<Guid, bool>? admit = null);

    /// <summary>Gives a claimed, unfinished message back: it waits until <paramref name="notBefore"/>, its body out of memory.</summary>
    void Release(SpooledMessage message, DateTimeOffset notBefore);

    /// <summary>Makes a waiting message (or every one, with "*") due now; returns how many were.</summary>
    int MakeDue(string queueId);

    /// <summary>Records that the given recipients need no more delivery.</summary>
    void Finish(SpooledMessage message, IReadOnlyCollection<int> recipients);

    /// <summary>Reads the stored message bytes back, as a seekable stream.</summary>
    Stream OpenBody(SpooledMessage message);
}
