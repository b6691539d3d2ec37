using Postern.Core.Configuration;

namespace Postern.Core.Scanning.Engines;

/// <summary>
/// Finds what attachments really are, by content: programs (PE, ELF, Mach-O, LNK, MSI, JAR, CHM),
/// scripts, macro-enabled Office documents, encrypted documents and archives, archives inside
/// archives, and containers that cannot be looked into. Archives (zip, 7z, rar, tar, gzip, bzip2, xz)
/// are opened with SharpCompress and their entries judged the same way, within limits on depth,
/// entry count and decompressed bytes so that a zip bomb costs a finding, not the node.
/// </summary>
/// <remarks>
/// Every finding's <see cref="Finding.Subject"/> is the attachment's file name as the recipient sees
/// it, so rules and administrators can tell which attachment it was; the reason names the entry
/// inside an archive ("report.zip &gt; docs/invoice.exe"). Each attachment, harmless or not, also gets a
/// <see cref="FindingKinds.AttachmentType"/> finding with its true type id in <see cref="Finding.FileType"/> (and at the
/// start of the reason), followed by one for each further type found inside it, so that policy can match on
/// true types ("pe", "script-js", "pdf") wherever they are hidden.
/// </remarks>
public sealed class AttachmentTypeEngine(AttachmentScanOptions options) : IScanEngine
{
    public const string EngineName = "attachments";

    public AttachmentTypeEngine()
        : this(new AttachmentScanOptions())
    {
    }

    public string Name => EngineName;

    public ValueTask<IReadOnlyList<Finding>> ScanAsync(ScanContext context, CancellationToken cancellationToken)
    {
        var findings = new List<Finding>();
        try
        {
            foreach (var leaf in MessageParts.Enumerate(context.Message))
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (leaf.IsBodyText || leaf.Part.Content is null)
                    continue;
                var (content, complete) = Decode(leaf.Part, cancellationToken);
                findings.AddRange(InspectAttachment(leaf.DisplayName, content, complete, leaf.Part.ContentType.MimeType, cancellationToken));
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A bug here must not let the message through unjudged: policy treats this like an engine that is down.
            findings.Add(new Finding(EngineName, FindingKinds.EngineUnavailable,
                $"attachment inspection failed ({e.GetType().Name}: {e.Message})"));
        }
        return ValueTask.FromResult<IReadOnlyList<Finding>>(findings);
    }

    /// <summary>
    /// Judges one attachment's decoded content. <paramref name="complete"/> is false when only the
    /// first bytes are given (the attachment was larger than <see cref="AttachmentScanOptions.MaxAttachmentBytes"/>):
    /// its type is still told, but containers in it are reported as not inspected.
    /// </summary>
    public IReadOnlyList<Finding> InspectAttachment(string fileName, ReadOnlyMemory<byte> content, bool complete = true,
        string? declaredMimeType = null, CancellationToken cancellationToken = default)
    {
        var inspection = new AttachmentInspection(options, fileName, cancellationToken);
        var type = inspection.Run(content, complete);
        var extension = FileTypeDetector.ExtensionOf(fileName);
        var reason = $"{type.Id}: '{fileName}' is {Article(type.Description)}";
        if (extension is not null && !type.MatchesExtension(extension))
            reason += $", named .{extension}";
        if (declaredMimeType is not null)
            reason += $" (declared {declaredMimeType})";
        var findings = new List<Finding>(inspection.Findings.Count + inspection.EntryTypes.Count + 1)
        {
            new(EngineName, FindingKinds.AttachmentType, reason, Subject: fileName, FileType: type.Id),
        };
        foreach (var (path, entryType) in inspection.EntryTypes)
            findings.Add(new Finding(EngineName, FindingKinds.AttachmentType, $"{entryType.Id}: '{fileName}' holds {path}: {Article(entryType.Description)}",
                Subject: fileName, FileType: entryType.Id));
        findings.AddRange(inspection.Findings);
        return findings;
    }

    private (ReadOnlyMemory<byte> Content, bool Complete) Decode(MimeKit.MimePart part, CancellationToken cancellationToken)
    {
        using var sink = new CappedBuffer(options.MaxAttachmentBytes);
        try
        {
            part.Content?.DecodeTo(sink, cancellationToken);
        }
        catch (Exception e) when (e is FormatException or IOException or InvalidOperationException)
        {
            // Broken transfer encoding: judge what could be decoded, as a mail client would show it.
        }
        return (sink.ToMemory(), !sink.Truncated);
    }

    internal static string Article(string description) =>
        description.Length > 0 && "aeiouAEIOU".Contains(description[0]) ? $"an {description}" : $"a {description}";
}

/// <summary>A write-only memory stream that keeps the first <c>limit</c> bytes and remembers that it dropped the rest.</summary>
internal sealed class CappedBuffer(long limit) : Stream
{
    private readonly MemoryStream buffer = new();

    public bool Truncated { get; private set; }

    public ReadOnlyMemory<byte> ToMemory() => buffer.GetBuffer().AsMemory(0, (int)buffer.Length);

    public override void Write(byte[] data, int offset, int count) => Write(data.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> data)
    {
        var room = (int)Math.Min(data.Length, Math.Max(0, limit - buffer.Length));
        if (room < data.Length)
            Truncated = true;
        buffer.Write(data[..room]);
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => buffer.Length;
    public override long Position { get => buffer.Length; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] data, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        // The bytes stay readable through ToMemory() after disposal; nothing unmanaged to free.
        base.Dispose(disposing);
    }
}
