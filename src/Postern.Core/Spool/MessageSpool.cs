using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Postern.Core.Spool;

/// <summary>
/// The durable queue. Messages are appended to a segment file by one writer that fsyncs once per
/// batch (group commit): every session waiting in that batch gets its 250 after the same fsync.
/// Finished recipients are logged beside each segment; a segment whose messages are all finished
/// is deleted. On start, <see cref="Recover"/> returns every message not yet finished.
/// </summary>
/// <remarks>
/// Record layout: "PSM1" | envelope length (int32 LE) | body length (int64 LE) | envelope (JSON) | body | "PSME".
/// A record without its trailer is a write torn by a crash; it was never acknowledged and is cut off.
/// </remarks>
public sealed partial class MessageSpool : IAsyncDisposable
{
    private static readonly byte[] Magic = "PSM1"u8.ToArray();
    private static readonly byte[] Trailer = "PSME"u8.ToArray();
    private const int HeaderSize = 16;
    private const int MaxBatch = 512;
    private const int CacheLimit = 256 * 1024;

    private readonly string _directory;
    private readonly long _maxSegmentSize;
    private readonly ILogger _logger;
    private readonly Channel<AppendRequest> _requests = Channel.CreateUnbounded<AppendRequest>(new UnboundedChannelOptions { SingleReader = true });
    private readonly object _gate = new();
    private readonly Dictionary<int, SpoolSegment> _segments = new();
    private SpoolSegment? _active;
    private Task? _writer;

    public MessageSpool(string directory, ILogger<MessageSpool> logger, long maxSegmentSize = 64L * 1024 * 1024)
    {
        _directory = directory;
        _maxSegmentSize = maxSegmentSize;
        _logger = logger;
        Directory.CreateDirectory(directory);
        SpillDirectory = Path.Combine(directory, "incoming");
    }

    /// <summary>Where message content larger than memory allows is kept while it is received.</summary>
    public string SpillDirectory { get; }

    /// <summary>Reads every segment and returns the messages with recipients still to deliver. Call once, before <see cref="Start"/>.</summary>
    public IReadOnlyList<SpooledMessage> Recover()
    {
        if (Directory.Exists(SpillDirectory))
            Directory.Delete(SpillDirectory, recursive: true);
        var pending = new List<SpooledMessage>();
        foreach (var path in Directory.GetFiles(_directory, "*.seg").Order(StringComparer.Ordinal))
        {
            if (!int.TryParse(Path.GetFileNameWithoutExtension(path), out var number))
                continue;
            var segment = new SpoolSegment(number, _directory);
            var done = ReadDoneLog(segment.DonePath);
            var messages = ReadSegment(segment, done);
            segment.Live = messages.Count;
            if (messages.Count == 0)
            {
                DeleteSegment(segment);
                continue;
            }
            _segments[number] = segment;
            pending.AddRange(messages);
        }
        if (pending.Count > 0)
            _logger.LogInformation("Spool recovered {Count} messages to deliver from {Segments} segments", pending.Count, _segments.Count);
        return pending;
    }

    /// <summary>Starts the group-commit writer.</summary>
    public void Start() => _writer ??= Task.Run(WriteLoopAsync);

    /// <summary>
    /// Appends a message: <paramref name="head"/> (new header lines) followed by <paramref name="content"/>
    /// from <paramref name="contentOffset"/>. Completes once the record is fsynced.
    /// </summary>
    /// <remarks>
    /// <paramref name="head"/> and <paramref name="content"/> belong to the spool until the returned task
    /// completes. Cancellation is honoured only while the request still waits for the writer: once the writer
    /// has taken it, the task completes when the record is on disk (or definitely not written), whatever the
    /// token says, so the caller never frees a buffer the writer is still copying.
    /// </remarks>
    public async Task<SpooledMessage> AppendAsync(Envelope envelope, ReadOnlyMemory<byte> head, MessageContent content, long contentOffset, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var request = new AppendRequest(envelope, JsonSerializer.SerializeToUtf8Bytes(envelope, SpoolJsonContext.Default.Envelope), head, content, contentOffset);
        if (!_requests.Writer.TryWrite(request))
            throw new InvalidOperationException("The spool is shut down.");
        using (cancellationToken.UnsafeRegister(static (state, token) => ((AppendRequest)state!).TryCancel(token), request))
            return await request.Completion.Task.ConfigureAwait(false);
    }

    /// <summary>Records that the given recipients need no more delivery; deletes the segment when nothing in it is left.</summary>
    public void Finish(SpooledMessage message, IReadOnlyCollection<int> recipients)
    {
        if (recipients.Count == 0)
            return;
        var last = message.Finish(recipients);
        lock (_gate)
        {
            var segment = message.Segment;
            segment.AppendDone(last ? message.QueueId + " *" : message.QueueId + " " + string.Join(',', recipients));
            if (!last)
                return;
            message.CachedBody = null;
            segment.Live--;
            if (segment.Live == 0 && !segment.IsActive)
            {
                _segments.Remove(segment.Number);
                DeleteSegment(segment);
            }
        }
        MessageFinished?.Invoke(message);
    }

    /// <summary>Raised when a message's last recipient is finished (it no longer counts against its tenant's spool bytes).</summary>
    public event Action<SpooledMessage>? MessageFinished;

    /// <summary>The stored message bytes, as a seekable stream.</summary>
    public Stream OpenBody(SpooledMessage message)
    {
        if (message.CachedBody is { } cached)
            return new MemoryStream(cached, writable: false);
        var stream = new FileStream(message.Segment.SegmentPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 64 * 1024);
        return new MimeKit.IO.BoundStream(stream, message.BodyOffset, message.BodyOffset + message.BodyLength, leaveOpen: false);
    }

    public async ValueTask DisposeAsync()
    {
        _requests.Writer.TryComplete();
        if (_writer is not null)
            await _writer.ConfigureAwait(false);
        lock (_gate)
        {
            foreach (var segment in _segments.Values)
                segment.Dispose();
        }
    }

    private async Task WriteLoopAsync()
    {
        var batch = new List<AppendRequest>(MaxBatch);
        var reader = _requests.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            // A request its caller cancelled before the writer took it is dropped; one taken is the writer's until completed.
            while (batch.Count < MaxBatch && reader.TryRead(out var request))
                if (request.TryClaim())
                    batch.Add(request);
            if (batch.Count == 0)
                continue;
            try
            {
                var stored = WriteBatch(batch);
                for (var i = 0; i < batch.Count; i++)
                    batch[i].Completion.TrySetResult(stored[i]);
            }
            catch (Exception ex)
            {
                _logger.LogError(ex, "Spool write failed; {Count} messages were not accepted", batch.Count);
                lock (_gate)
                {
                    // Cut off whatever of this batch reached the file before anyone hears it failed, so a
                    // refused message is never delivered after a restart, then start a new segment.
                    DiscardUncommitted();
                    SealActive();
                }
                foreach (var request in batch)
                    request.Completion.TrySetException(new IOException("The spool could not store the message.", ex));
            }
        }
        lock (_gate)
            SealActive();
    }

    private List<SpooledMessage> WriteBatch(List<AppendRequest> batch)
    {
        SpoolSegment segment;
        lock (_gate)
        {
            if (_active is null || _active.Length >= _maxSegmentSize)
                OpenNewSegment();
            segment = _active!;
        }
        var writer = new GatherWriter(segment.Handle!, segment.Length);
        var stored = new List<SpooledMessage>(batch.Count);
        foreach (var request in batch)
        {
            var bodyLength = request.Head.Length + request.Content.Length - request.ContentOffset;
            var header = new byte[HeaderSize];
            Magic.CopyTo(header, 0);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(4), request.EnvelopeJson.Length);
            BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(8), bodyLength);
            writer.Add(header);
            writer.Add(request.EnvelopeJson);
            var bodyOffset = writer.Position;
            writer.Add(request.Head);
            if (request.Content.IsSpilled)
                writer.CopyFrom(request.Content, request.ContentOffset);
            else
                foreach (var piece in request.Content.Segments(request.ContentOffset))
                    writer.Add(piece);
            writer.Add(Trailer);
            var message = new SpooledMessage(request.Envelope, request.EnvelopeJson.Length, segment, bodyOffset, bodyLength);
            if (bodyLength <= CacheLimit)
                message.CachedBody = CopyBody(request, bodyLength);
            stored.Add(message);
        }
        writer.Flush();
        RandomAccess.FlushToDisk(segment.Handle!);
        lock (_gate)
        {
            segment.Length = writer.Position;
            segment.Live += batch.Count;
        }
        return stored;
    }

    /// <summary>Collects buffers and writes them with one vectored write.</summary>
    private sealed class GatherWriter(Microsoft.Win32.SafeHandles.SafeFileHandle handle, long start)
    {
        private readonly List<ReadOnlyMemory<byte>> _buffers = new();
        private long _written = start;

        public long Position { get; private set; } = start;

        public void Add(ReadOnlyMemory<byte> buffer)
        {
            if (buffer.Length == 0)
                return;
            _buffers.Add(buffer);
            Position += buffer.Length;
        }

        public void CopyFrom(MessageContent content, long offset)
        {
            Flush();
            Position += content.CopyRangeTo(handle, Position, offset);
            _written = Position;
        }

        public void Flush()
        {
            if (_buffers.Count == 0)
                return;
            RandomAccess.Write(handle, _buffers, _written);
            _buffers.Clear();
            _written = Position;
        }
    }

    private static byte[] CopyBody(AppendRequest request, long bodyLength)
    {
        var body = new byte[bodyLength];
        request.Head.Span.CopyTo(body);
        var at = request.Head.Length;
        foreach (var piece in request.Content.Segments(request.ContentOffset))
        {
            piece.Span.CopyTo(body.AsSpan(at));
            at += piece.Length;
        }
        return body;
    }

    /// <summary>Truncates the active segment to its last committed length, after a failed batch.</summary>
    private void DiscardUncommitted()
    {
        if (_active?.Handle is not { } handle)
            return;
        try
        {
            RandomAccess.SetLength(handle, _active.Length);
            RandomAccess.FlushToDisk(handle);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Recovery cuts a torn tail off too; the segment is sealed next and never written again.
            _logger.LogWarning(ex, "Spool segment {Segment}: could not cut off a failed batch", _active.SegmentPath);
        }
    }

    private void OpenNewSegment()
    {
        SealActive();
        var number = _segments.Count == 0 ? 1 : _segments.Keys.Max() + 1;
        var segment = new SpoolSegment(number, _directory)
        {
            Handle = File.OpenHandle(Path.Combine(_directory, $"{number:D8}.seg"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read),
        };
        DirectorySync.Fsync(_directory);
        _segments[number] = segment;
        _active = segment;
    }

    private void SealActive()
    {
        if (_active is null)
            return;
        var sealedSegment = _active;
        _active = null;
        sealedSegment.Handle?.Dispose();
        sealedSegment.Handle = null;
        if (sealedSegment.Live == 0)
        {
            _segments.Remove(sealedSegment.Number);
            DeleteSegment(sealedSegment);
        }
    }

    private void DeleteSegment(SpoolSegment segment)
    {
        segment.Dispose();
        File.Delete(segment.SegmentPath);
        File.Delete(segment.DonePath);
    }

    private static Dictionary<string, HashSet<int>?> ReadDoneLog(string path)
    {
        var done = new Dictionary<string, HashSet<int>?>(StringComparer.Ordinal);
        if (!File.Exists(path))
            return done;
        foreach (var line in File.ReadLines(path))
        {
            var space = line.IndexOf(' ');
            if (space <= 0)
                continue;
            var id = line[..space];
            var rest = line[(space + 1)..];
            if (rest == "*")
            {
                done[id] = null;
                continue;
            }
            if (done.TryGetValue(id, out var existing) && existing is null)
                continue;
            existing ??= new HashSet<int>();
            foreach (var part in rest.Split(',', StringSplitOptions.RemoveEmptyEntries))
                if (int.TryParse(part, out var index))
                    existing.Add(index);
            done[id] = existing;
        }
        return done;
    }

    private List<SpooledMessage> ReadSegment(SpoolSegment segment, Dictionary<string, HashSet<int>?> done)
    {
        var result = new List<SpooledMessage>();
        using var handle = File.OpenHandle(segment.SegmentPath, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        var length = RandomAccess.GetLength(handle);
        var position = 0L;
        var header = new byte[HeaderSize];
        var trailer = new byte[Trailer.Length];
        while (position < length)
        {
            if (length - position < HeaderSize || RandomAccess.Read(handle, header, position) < HeaderSize || !header.AsSpan(0, 4).SequenceEqual(Magic))
                break;
            var envelopeLength = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(4));
            var bodyLength = BinaryPrimitives.ReadInt64LittleEndian(header.AsSpan(8));
            var end = position + HeaderSize + envelopeLength + bodyLength + Trailer.Length;
            if (envelopeLength <= 0 || bodyLength < 0 || end > length)
                break;
            if (RandomAccess.Read(handle, trailer, end - Trailer.Length) < Trailer.Length || !trailer.AsSpan().SequenceEqual(Trailer))
                break;
            var json = new byte[envelopeLength];
            RandomAccess.Read(handle, json, position + HeaderSize);
            var envelope = JsonSerializer.Deserialize(json, SpoolJsonContext.Default.Envelope)!;
            if (!done.TryGetValue(envelope.QueueId, out var finished) || finished is not null)
            {
                var message = new SpooledMessage(envelope, envelopeLength, segment, position + HeaderSize + envelopeLength, bodyLength, finished);
                if (message.PendingRecipients.Count > 0)
                    result.Add(message);
            }
            position = end;
        }
        if (position < length)
        {
            _logger.LogWarning("Spool segment {Segment}: {Bytes} bytes after the last complete record were cut off (a write torn by a crash, never acknowledged)",
                segment.SegmentPath, length - position);
            RandomAccess.SetLength(handle, position);
            RandomAccess.FlushToDisk(handle);
        }
        return result;
    }

    private sealed record AppendRequest(Envelope Envelope, byte[] EnvelopeJson, ReadOnlyMemory<byte> Head, MessageContent Content, long ContentOffset)
    {
        private const int Waiting = 0, Claimed = 1, Cancelled = 2;
        private int _state;

        public TaskCompletionSource<SpooledMessage> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The writer takes the request; false when its caller cancelled it first.</summary>
        public bool TryClaim() => Interlocked.CompareExchange(ref _state, Claimed, Waiting) == Waiting;

        /// <summary>The caller gives up, but only if the writer has not taken the request yet.</summary>
        public void TryCancel(CancellationToken token)
        {
            if (Interlocked.CompareExchange(ref _state, Cancelled, Waiting) == Waiting)
                Completion.TrySetCanceled(token);
        }
    }
}
