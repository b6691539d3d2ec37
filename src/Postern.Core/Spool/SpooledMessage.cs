namespace Postern.Core.Spool;

/// <summary>
/// A message that is safe on disk and waiting for (or in) delivery. Its content is the stored
/// message exactly as it will be sent, minus the per-delivery headers (loop token).
/// </summary>
public sealed class SpooledMessage
{
    private readonly object _gate = new();
    private readonly HashSet<int> _finished;

    internal SpooledMessage(Envelope envelope, int envelopeLength, SpoolSegment segment, long bodyOffset, long bodyLength, IEnumerable<int>? finished = null)
    {
        Envelope = envelope;
        EnvelopeLength = envelopeLength;
        Segment = segment;
        BodyOffset = bodyOffset;
        BodyLength = bodyLength;
        _finished = finished is null ? new HashSet<int>() : new HashSet<int>(finished);
    }

    public Envelope Envelope { get; }
    public string QueueId => Envelope.QueueId;
    public long BodyLength { get; }

    internal SpoolSegment Segment { get; }
    internal long BodyOffset { get; }

    /// <summary>Length of the envelope JSON in the record, which ends where the body begins: what a read-back reads.</summary>
    internal int EnvelopeLength { get; }

    /// <summary>The stored bytes, kept in memory for small messages until delivery is done.</summary>
    internal byte[]? CachedBody { get; set; }

    /// <summary>Delivery attempts made so far (this process).</summary>
    public int Attempts { get; set; }

    /// <summary>Indexes into <see cref="Envelope.Recipients"/> that need no more delivery.</summary>
    public IReadOnlyCollection<int> FinishedRecipients
    {
        get { lock (_gate) return _finished.ToArray(); }
    }

    /// <summary>Indexes of recipients still to deliver.</summary>
    public IReadOnlyList<int> PendingRecipients
    {
        get
        {
            lock (_gate)
                return Enumerable.Range(0, Envelope.Recipients.Count).Where(i => !_finished.Contains(i)).ToArray();
        }
    }

    /// <summary>Marks recipients finished; true when that was the last one.</summary>
    internal bool Finish(IEnumerable<int> recipients)
    {
        lock (_gate)
        {
            var before = _finished.Count;
            foreach (var r in recipients)
                _finished.Add(r);
            return before < Envelope.Recipients.Count && _finished.Count >= Envelope.Recipients.Count;
        }
    }
}
