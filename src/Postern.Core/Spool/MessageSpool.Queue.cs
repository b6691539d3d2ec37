using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Postern.Core.Spool;

/// <summary>
/// The waiting side of <see cref="IQueueStore"/> for the local spool: messages the scheduler gave back
/// (deferred, or beyond its in-memory queue) wait here by due time as a reference to their record, without
/// body or envelope, and are read back from the segment when claimed. Not durable by itself: after a restart
/// <see cref="Recover"/> finds every unfinished message again.
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

    public IReadOnlyList<SpooledMessage> Claim(DateTimeOffset now, int max, Func<Guid, bool>? admit = null)
    {
        var claimed = new List<Waiting>();
        var full = new HashSet<Guid>();
        lock (_waitingGate)
        {
            while (_timed.TryPeek(out var timed, out var at) && at <= now)
            {
                _timed.Dequeue();
                if (IsCurrent(timed))
                    _due.Enqueue(timed.Entry.TenantId, timed);
            }
            while (claimed.Count < max && _due.TryPeek(tenant => !full.Contains(tenant), out var due))
            {
                var current = IsCurrent(due);
                if (current && admit is not null && !admit(due.Entry.TenantId))
                {
                    // The tenant has its share: its oldest message stays first in its line for the next claim.
                    full.Add(due.Entry.TenantId);
                    continue;
                }
                _due.TryDequeue(out _);
                if (!current)
                    continue;
                _waitingById.Remove(due.Entry.QueueId);
                claimed.Add(due.Entry);
            }
        }
        var messages = new List<SpooledMessage>(claimed.Count);
        foreach (var entry in claimed)
        {
            try
            {
                messages.Add(entry.ReadBack());
            }
            catch (Exception ex) when (ex is IOException or JsonException or UnauthorizedAccessException)
            {
                _logger.LogError(ex, "{QueueId}: cannot read the queued message back from {Segment}; trying again in a minute", entry.QueueId, entry.Segment.SegmentPath);
                Park(entry, now.AddMinutes(1));
            }
        }
        return messages;
    }

    public void Release(SpooledMessage message, DateTimeOffset notBefore)
    {
        message.CachedBody = null;
        Park(new Waiting(message), notBefore);
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
                _due.Enqueue(entry.TenantId, (entry, entry.Version));
            }
            return entries.Count;
        }
    }

    private void Park(Waiting entry, DateTimeOffset notBefore)
    {
        lock (_waitingGate)
        {
            _waitingById[entry.QueueId] = entry;
            entry.Version++;
            _timed.Enqueue((entry, entry.Version), notBefore);
        }
    }

    private bool IsCurrent((Waiting Entry, long Version) reference) =>
        reference.Entry.Version == reference.Version
        && _waitingById.TryGetValue(reference.Entry.QueueId, out var entry) && ReferenceEquals(entry, reference.Entry);

    /// <summary>
    /// A released message as a reference to its record: where its envelope and body are, which recipients are
    /// done, and how many attempts were made. A new version makes older queue references to it stale.
    /// </summary>
    private sealed class Waiting(SpooledMessage message)
    {
        public string QueueId { get; } = message.QueueId;
        public Guid TenantId { get; } = message.Envelope.TenantId;
        public SpoolSegment Segment { get; } = message.Segment;
        public long BodyOffset { get; } = message.BodyOffset;
        public long BodyLength { get; } = message.BodyLength;
        public int EnvelopeLength { get; } = message.EnvelopeLength;
        public int Attempts { get; } = message.Attempts;
        public int[] Finished { get; } = message.FinishedRecipients.ToArray();
        public long Version { get; set; }

        public SpooledMessage ReadBack()
        {
            var json = new byte[EnvelopeLength];
            using (var handle = File.OpenHandle(Segment.SegmentPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete))
            {
                if (RandomAccess.Read(handle, json, BodyOffset - EnvelopeLength) < json.Length)
                    throw new IOException($"the record of {QueueId} is shorter than its header says");
            }
            var envelope = JsonSerializer.Deserialize(json, SpoolJsonContext.Default.Envelope)
                ?? throw new JsonException($"the envelope of {QueueId} is empty");
            return new SpooledMessage(envelope, EnvelopeLength, Segment, BodyOffset, BodyLength, Finished) { Attempts = Attempts };
        }
    }
}
