namespace Postern.Core.Authentication;

/// <summary>
/// Parsed DKIM and ARC key records, looked up by the record text they came from. Building a 2048-bit RSA key
/// (BouncyCastle validates the modulus) costs about as much CPU as scanning a whole message, and every signed
/// message names the same few keys again, so each distinct record is parsed once. The DNS answer is still
/// asked of the resolver for every message (it caches by TTL): a changed or removed record is simply a
/// different text, so nothing here outlives what DNS says. Bounded: the least recently used entry goes first, and
/// a record longer than <see cref="MaxRecordLength"/> is never held, so a sender's DNS cannot make the cache large.
/// </summary>
public sealed class DkimKeyCache
{
    /// <summary>Enough for every signing domain a busy relay sees in a day; an entry is a few hundred bytes.</summary>
    public const int DefaultCapacity = 4096;

    /// <summary>
    /// Longer records (TXT answers can be 64 KB of text) are parsed each time instead of held; an RSA-8192 key's
    /// record is about 1.5 KB, so every real key fits, and the cache holds at most capacity × this many characters.
    /// </summary>
    public const int MaxRecordLength = 4096;

    private readonly int _capacity;
    private readonly Dictionary<string, LinkedListNode<Entry>> _entries = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _recentFirst = new();
    private readonly Lock _lock = new();
    private long _misses;

    public DkimKeyCache(int capacity = DefaultCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
    }

    /// <summary>The cache every <see cref="DnsDkimKeyLocator"/> uses unless it is given its own: keys are public, so sharing them is safe.</summary>
    public static DkimKeyCache Shared { get; } = new();

    /// <summary>How many records are held.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
                return _entries.Count;
        }
    }

    /// <summary>How many look-ups had to parse (a record not held, evicted since, or too long to hold).</summary>
    public long Misses => Interlocked.Read(ref _misses);

    /// <summary>
    /// The parsed record for <paramref name="text"/>, as <see cref="DkimPublicKeyRecord.Parse"/> gives it; a record
    /// that does not parse is remembered too and throws the same <see cref="DkimKeyException"/> each time.
    /// </summary>
    public DkimPublicKeyRecord Parse(string text)
    {
        if (text.Length > MaxRecordLength)
        {
            Interlocked.Increment(ref _misses);
            return DkimPublicKeyRecord.Parse(text);
        }
        lock (_lock)
        {
            if (_entries.TryGetValue(text, out var node))
            {
                _recentFirst.Remove(node);
                _recentFirst.AddFirst(node);
                return node.Value.Result();
            }
        }

        // Parsed outside the lock: two threads may both parse a new record once, which is harmless.
        Entry entry;
        try
        {
            entry = new Entry(text, DkimPublicKeyRecord.Parse(text), null);
        }
        catch (DkimKeyException ex)
        {
            entry = new Entry(text, null, ex.Message);
        }
        lock (_lock)
        {
            Interlocked.Increment(ref _misses);
            if (!_entries.ContainsKey(text))
            {
                _entries[text] = _recentFirst.AddFirst(entry);
                if (_entries.Count > _capacity)
                {
                    _entries.Remove(_recentFirst.Last!.Value.Text);
                    _recentFirst.RemoveLast();
                }
            }
        }
        return entry.Result();
    }

    private sealed record Entry(string Text, DkimPublicKeyRecord? Record, string? Problem)
    {
        public DkimPublicKeyRecord Result() => Record ?? throw new DkimKeyException(Problem!, temporary: false);
    }
}
