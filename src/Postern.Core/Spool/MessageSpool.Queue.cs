using System.Buffers.Binary;
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
            while (claimed.Count < max && _due.TryDequeue(tenant => !full.Contains(tenant), out var due))
            {
                if (!IsCurrent(due))
                    continue;
                if (admit is not null && !admit(due.Entry.TenantId))
                {
                    full.Add(due.Entry.TenantId);
                    _due.Enqueue(due.Entry.TenantId, due);
                    continue;
                }
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
        Park(Waiting.For(message), notBefore);
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
    private sealed class Waiting
    {
        private Envelope? _envelope;

        private Waiting(SpooledMessage message)
        {
            QueueId = message.QueueId;
            TenantId = message.Envelope.TenantId;
            Segment = message.Segment;
            BodyOffset = message.BodyOffset;
            BodyLength = message.BodyLength;
            Attempts = message.Attempts;
            Finished = message.FinishedRecipients.ToArray();
        }

        public string QueueId { get; }
        public Guid TenantId { get; }
        public SpoolSegment Segment { get; }
        public long BodyOffset { get; }
        public long BodyLength { get; }
        public int Attempts { get; }
        public int[] Finished { get; }
        public long Version { get; set; }

        /// <summary>Length of the envelope JSON, which ends where the body begins; 0 when the envelope is kept in memory.</summary>
        private int EnvelopeLength { get; set; }

        /// <summary>
        /// The record's header is checked against the envelope's length before the envelope is let go, so a read-back
        /// can never land elsewhere; in the unlikely case it does not match, the envelope stays in memory.
        /// </summary>
        public static Waiting For(SpooledMessage message)
        {
            var entry = new Waiting(message);
            var length = JsonSerializer.SerializeToUtf8Bytes(message.Envelope, SpoolJsonContext.Default.Envelope).Length;
            if (entry.HeaderMatches(length))
                entry.EnvelopeLength = length;
            else
                entry._envelope = message.Envelope;
            return entry;
        }

        public SpooledMessage ReadBack()
        {
            var envelope = _envelope;
            if (envelope is null)
            {
                var json = new byte[EnvelopeLength];
                using var handle = OpenSegment();
                if (RandomAccess.Read(handle, json, BodyOffset - EnvelopeLength) < json.Length)
                    throw new IOException($"the record of {QueueId} is shorter than its header says");
                envelope = JsonSerializer.Deserialize(json, SpoolJsonContext.Default.Envelope)
                    ?? throw new JsonException($"the envelope of {QueueId} is empty");
            }
            return new SpooledMessage(envelope, Segment, BodyOffset, BodyLength, Finished) { Attempts = Attempts };
        }

        private bool HeaderMatches(int envelopeLength)
        {
            var start = BodyOffset - envelopeLength - HeaderSize;
            if (start < 0)
                return false;
            var header = new byte[HeaderSize];
            try
            {
                using var handle = OpenSegment();
                return RandomAccess.Read(handle, header, start) == HeaderSize
                    && header.AsSpan(0, Magic.Length).SequenceEqual(Magic)
                    && BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4)) == envelopeLength
                    && BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(8)) == BodyLength;
            }
            catch (IOException)
            {
                return false;
            }
        }

        private Microsoft.Win32.SafeHandles.SafeFileHandle OpenSegment() =>
            File.OpenHandle(Segment.SegmentPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
    }
}
