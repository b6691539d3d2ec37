using Microsoft.Win32.SafeHandles;

namespace Postern.Core.Spool;

/// <summary>
/// One append-only spool file ("NNNNNNNN.seg") and its completion log ("NNNNNNNN.done").
/// Deleted when every message in it is finished and a newer segment is active.
/// </summary>
internal sealed class SpoolSegment : IDisposable
{
    private FileStream? _done;

    public SpoolSegment(int number, string directory)
    {
        Number = number;
        SegmentPath = Path.Combine(directory, $"{number:D8}.seg");
        DonePath = Path.Combine(directory, $"{number:D8}.done");
    }

    public int Number { get; }
    public string SegmentPath { get; }
    public string DonePath { get; }

    /// <summary>Open for appending while this is the active segment; null once sealed or recovered.</summary>
    public SafeFileHandle? Handle { get; set; }

    public long Length { get; set; }

    /// <summary>Messages in this segment not yet finished. Guarded by the spool's lock.</summary>
    public int Live { get; set; }

    public bool IsActive => Handle is not null;

    public void AppendDone(string line)
    {
        _done ??= new FileStream(DonePath, FileMode.Append, FileAccess.Write, FileShare.Read, 4096);
        var bytes = System.Text.Encoding.ASCII.GetBytes(line + "\n");
        _done.Write(bytes);
        // Reaches the OS at once (survives a process crash); fsynced with the next group commit.
        _done.Flush(flushToDisk: false);
    }

    public void FlushDoneToDisk() => _done?.Flush(flushToDisk: true);

    public void Dispose()
    {
        Handle?.Dispose();
        Handle = null;
        _done?.Dispose();
        _done = null;
    }
}
