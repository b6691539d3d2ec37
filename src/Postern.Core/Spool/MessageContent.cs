using System.Buffers;

namespace Postern.Core.Spool;

/// <summary>
/// The bytes of one message while it is received: pooled 64 KB chunks in memory, moved to a
/// temporary file once it grows past <see cref="SpillThreshold"/> so large messages do not sit in RAM.
/// </summary>
public sealed class MessageContent : IDisposable
{
    public const int ChunkSize = 64 * 1024;
    public const long SpillThreshold = 4 * 1024 * 1024;

    private readonly string _spillDirectory;
    private readonly List<byte[]> _chunks = new();
    private int _lastChunkUsed;
    private FileStream? _file;

    public MessageContent(string spillDirectory)
    {
        _spillDirectory = spillDirectory;
    }

    public long Length { get; private set; }

    public bool IsSpilled => _file is not null;

    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (_file is null && Length + data.Length > SpillThreshold)
            await SpillAsync(cancellationToken).ConfigureAwait(false);
        if (_file is not null)
        {
            await _file.WriteAsync(data, cancellationToken).ConfigureAwait(false);
            Length += data.Length;
            return;
        }
        var span = data.Span;
        while (span.Length > 0)
        {
            if (_chunks.Count == 0 || _lastChunkUsed == ChunkSize)
            {
                _chunks.Add(ArrayPool<byte>.Shared.Rent(ChunkSize));
                _lastChunkUsed = 0;
            }
            var take = Math.Min(span.Length, ChunkSize - _lastChunkUsed);
            span[..take].CopyTo(_chunks[^1].AsSpan(_lastChunkUsed));
            _lastChunkUsed += take;
            span = span[take..];
            Length += take;
        }
    }

    /// <summary>Copies up to <paramref name="destination"/>.Length bytes from the start; returns how many.</summary>
    public int CopyPrefix(Span<byte> destination)
    {
        var want = (int)Math.Min(destination.Length, Length);
        if (_file is not null)
        {
            _file.Flush();
            return RandomAccess.Read(_file.SafeFileHandle, destination[..want], 0);
        }
        var copied = 0;
        foreach (var memory in Segments(0))
        {
            var take = Math.Min(memory.Length, want - copied);
            memory.Span[..take].CopyTo(destination[copied..]);
            copied += take;
            if (copied == want)
                break;
        }
        return copied;
    }

    /// <summary>The in-memory content from <paramref name="offset"/> on, as segments (not for spilled content).</summary>
    public IEnumerable<ReadOnlyMemory<byte>> Segments(long offset)
    {
        if (_file is not null)
            throw new InvalidOperationException("Spilled content is read with CopyRangeTo.");
        for (var i = 0; i < _chunks.Count; i++)
        {
            var used = i == _chunks.Count - 1 ? _lastChunkUsed : ChunkSize;
            if (offset >= used)
            {
                offset -= used;
                continue;
            }
            yield return _chunks[i].AsMemory((int)offset, used - (int)offset);
            offset = 0;
        }
    }

    /// <summary>Writes the content from <paramref name="offset"/> on into a file at <paramref name="fileOffset"/>; returns bytes written.</summary>
    public long CopyRangeTo(Microsoft.Win32.SafeHandles.SafeFileHandle target, long fileOffset, long offset)
    {
        var written = 0L;
        if (_file is null)
        {
            foreach (var segment in Segments(offset))
            {
                RandomAccess.Write(target, segment.Span, fileOffset + written);
                written += segment.Length;
            }
            return written;
        }
        _file.Flush();
        var buffer = ArrayPool<byte>.Shared.Rent(1024 * 1024);
        try
        {
            while (offset < Length)
            {
                var read = RandomAccess.Read(_file.SafeFileHandle, buffer.AsSpan(0, (int)Math.Min(buffer.Length, Length - offset)), offset);
                if (read <= 0)
                    break;
                RandomAccess.Write(target, buffer.AsSpan(0, read), fileOffset + written);
                written += read;
                offset += read;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return written;
    }

    /// <summary>A read-only stream over the whole content.</summary>
    public Stream OpenRead(long offset = 0)
    {
        if (_file is not null)
        {
            _file.Flush();
            var stream = new FileStream(_file.Name, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            stream.Position = offset;
            return stream;
        }
        var copy = new MemoryStream((int)Math.Max(0, Length - offset));
        foreach (var segment in Segments(offset))
            copy.Write(segment.Span);
        copy.Position = 0;
        return copy;
    }

    private async ValueTask SpillAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(_spillDirectory);
        var path = Path.Combine(_spillDirectory, Guid.NewGuid().ToString("N") + ".tmp");
        var file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read | FileShare.Delete, 1024 * 1024,
            FileOptions.DeleteOnClose | FileOptions.Asynchronous);
        foreach (var segment in Segments(0).ToArray())
            await file.WriteAsync(segment, cancellationToken).ConfigureAwait(false);
        ReturnChunks();
        _file = file;
    }

    private void ReturnChunks()
    {
        foreach (var chunk in _chunks)
            ArrayPool<byte>.Shared.Return(chunk);
        _chunks.Clear();
        _lastChunkUsed = 0;
    }

    public void Dispose()
    {
        ReturnChunks();
        _file?.Dispose();
        _file = null;
    }
}
