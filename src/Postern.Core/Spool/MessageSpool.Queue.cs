namespace Postern.Core.Spool;

/// <summary>
/// The waiting side of <see cref="IQueueStore"/> for the local spool: messages the scheduler gave back
/// (deferred, or beyond its in-memory queue) wait here by due time, without their bodies, until claimed.
/// Not durable by itself: after a restart <see cref="Recover"/> finds every unfinished message again.
/// </summary>
public sealed partial class MessageSpool : IQueueStore
{
    private readonly object _waitingGate = new();
    private readonly Dictionary<string, Waiting> _waitingById = new(StringComparer.Ordinal);
    private readonly PriorityQueue<(Waiting Entry, long Version), DateTimeOffset> _timed = new();
    private readonly TenantRoundRobin<(Waiting Entry, long Version)> _due = new();

    /// <summary>Messages waiting in the store (deferred or not yet claimed).</summary>
    public int WaitingCount
    {
        get { lock (_waitingGate) return _waitingById.Count; }
    }

    public IReadOnlyList<SpooledMessage> Claim(DateTimeOffset now, int max)
    {
        var claimed = new List<SpooledMessage>();
        lock (_waitingGate)
        {
            while (_timed.TryPeek(out var timed, out var at) && at <= now)
            {
                _timed.Dequeue();
                if (IsCurrent(timed))
                    _due.Enqueue(timed.Entry.Message.Envelope.TenantId, timed);
            }
            while (claimed.Count < max && _due.TryDequeue(out var due))
            {
                if (!IsCurrent(due))
                    continue;
                _waitingById.Remove(due.Entry.Message.QueueId);
                claimed.Add(due.Entry.Message);
            }
        }
        return claimed;
    }

    public void Release(SpooledMessage message, DateTimeOffset notBefore)
    {
        // Read back from the segment when it is claimed again.
        message.CachedBody = null;
        lock (_waitingGate)
        {
            var entry = new Waiting(message);
            _waitingById[message.QueueId] = entry;
            _timed.Enqueue((entry, entry.Version), notBefore);
        }
    }

    public int MakeDue(string queueId)
    {
        lock (_waitingGate)
        {
            var entries = queueId == "*" ? _waitingById.Values.ToList()
                : _waitingById.TryGetValue(queueId, out var one) ? [one] : [];
            foreach (var entry in entries)
            {
                entry.Version++;
                _due.Enqueue(entry.Message.Envelope.TenantId, (entry, entry.Version));
            }
            return entries.Count;
        }
    }

    private bool IsCurrent((Waiting Entry, long Version) reference) =>
        reference.Entry.Version == reference.Version
        && _waitingById.TryGetValue(reference.Entry.Message.QueueId, out var entry) && ReferenceEquals(entry, reference.Entry);

    /// <summary>A released message; a new version makes older queue references to it stale.</summary>
    private sealed class Waiting(SpooledMessage message)
    {
        public SpooledMessage Message { get; } = message;
        public long Version { get; set; }
    }
}
