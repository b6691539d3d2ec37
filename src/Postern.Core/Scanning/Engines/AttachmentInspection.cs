using System.IO.Compression;
using Postern.Core.Configuration;
using SharpCompress.Archives;
using SharpCompress.Common;
using SharpCompress.Readers;

namespace Postern.Core.Scanning.Engines;

/// <summary>
/// One attachment's inspection: its true type, and for containers what is inside, recursively.
/// Holds the per-attachment budget (entries, decompressed bytes, depth) that all levels share, so
/// that no arrangement of nested archives can make Postern decompress more than the limits allow.
/// </summary>
internal sealed class AttachmentInspection(AttachmentScanOptions options, string attachment, CancellationToken cancellationToken)
{
    private const string Engine = AttachmentTypeEngine.EngineName;

    /// <summary>Extensions Windows runs as programs: an encrypted entry named like this is reported though its bytes cannot be read.</summary>
    private static readonly HashSet<string> RunnableExtensions = new(StringComparer.OrdinalIgnoreCase)
    {
        "exe", "scr", "com", "pif", "cpl", "dll", "msi", "msp", "lnk", "jar", "chm", "hta", "js", "jse", "vbs", "vbe",
        "wsf", "wsh", "ps1", "bat", "cmd", "reg", "scf", "url", "msc", "appx", "msix", "appref-ms", "application", "gadget", "iso", "img", "vhd", "vhdx",
    };

    /// <summary>OOXML extensions that mean "open with macros enabled".</summary>
    private static readonly HashSet<string> MacroEnabledExtensions = new(StringComparer.OrdinalIgnoreCase)
    {
        "docm", "dotm", "xlsm", "xltm", "xlam", "xlsb", "pptm", "potm", "ppam", "ppsm", "sldm", "vsdm",
    };

    private readonly List<Finding> findings = [];
    private readonly HashSet<string> seen = [];
    private int entries;
    private long decompressed;
    private bool limitReported;
    private long declared;
    private bool declaredReported;

    private readonly HashSet<string> entryTypeIds = [];
    private readonly List<(string Path, FileType Type)> entryTypes = [];

    public IReadOnlyList<Finding> Findings => findings;

    /// <summary>
    /// The true types of what was looked at inside the attachment (archive entries, unwrapped gzip/bzip2/xz content):
    /// each type once, with the first path that had it, so a thousand text files cost one entry, not a thousand.
    /// </summary>
    public IReadOnlyList<(string Path, FileType Type)> EntryTypes => entryTypes;

    /// <summary>Inspects the attachment and returns its (refined) true type.</summary>
    public FileType Run(ReadOnlyMemory<byte> content, bool complete)
    {
        try
        {
            return Inspect(content, complete, attachment, depth: 0, inWrapper: false);
        }
        catch (LimitReachedException)
        {
            return FileTypeDetector.Detect(Head(content.Span), attachment);
        }
    }

    private FileType Inspect(ReadOnlyMemory<byte> data, bool complete, string path, int depth, bool inWrapper)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var name = LeafName(path);
        var type = FileTypeDetector.Detect(Head(data.Span), name);

        if (type == FileType.Ole2)
            type = complete ? InspectCompoundFile(data, path) : type;
        else if (type == FileType.Zip && complete)
            type = ClassifyZip(data, path, name) ?? type;
        if (path != attachment && entryTypeIds.Add(type.Id))
            entryTypes.Add((path, type));

        switch (type.Category)
        {
            case FileCategory.Executable:
                Add(FindingKinds.Executable, Describe(path, depth, type, name));
                break;
            case FileCategory.Script:
                Add(FindingKinds.Script, Describe(path, depth, type, name));
                break;
            case FileCategory.OpaqueContainer:
                Add(FindingKinds.UninspectableAttachment, $"{Where(path, depth)} is {AttachmentTypeEngine.Article(type.Description)}, whose contents Postern cannot inspect");
                break;
            case FileCategory.Archive:
                if (depth > 0 && !(inWrapper && type == FileType.Tar))
                    Add(FindingKinds.NestedArchive, $"'{attachment}' holds an archive inside an archive: {path} ({type.Description})");
                if (depth >= options.MaxArchiveDepth)
                    Add(FindingKinds.UninspectableAttachment, $"{Where(path, depth)}: archives nested more than {options.MaxArchiveDepth} deep were not opened (possible archive bomb)");
                else if (!complete)
                    Add(FindingKinds.UninspectableAttachment, $"{Where(path, depth)}: larger than {options.MaxAttachmentBytes:N0} bytes, contents not inspected");
                else if (type.IsCompressionWrapper)
                    Unwrap(data, type, path, depth);
                else
                    InspectArchive(data, type, path, depth);
                break;
        }
        return type;
    }

    private FileType InspectCompoundFile(ReadOnlyMemory<byte> data, string path)
    {
        var file = CompoundFile.TryRead(data.Span);
        if (file is null)
            return FileType.Ole2;
        if (file.RootClsid == CompoundFile.MsiClsid)
            return FileType.Msi;
        if (file.Contains("EncryptedPackage"))
        {
            Add(FindingKinds.EncryptedDocument, $"{Where(path, 0)} is a password-protected Office document; its contents cannot be inspected");
            return FileType.EncryptedOffice;
        }
        var type = file.Contains("WordDocument") ? FileType.Doc
            : file.Contains("Workbook") || file.Contains("Book") ? FileType.Xls
            : file.Contains("PowerPoint Document") ? FileType.Ppt
            : file.Entries.Any(e => e.Name.StartsWith("__substg1.0_", StringComparison.Ordinal)) ? FileType.OutlookMsg
            : FileType.Ole2;
        // Word keeps its VBA project in the "Macros" storage, Excel in "_VBA_PROJECT_CUR"; both hold "VBA" and "_VBA_PROJECT".
        var vba = file.Entries.FirstOrDefault(e => e.Name is "_VBA_PROJECT" or "_VBA_PROJECT_CUR" or "VBA" or "Macros");
        if (vba is not null)
            Add(FindingKinds.MacroDocument, $"{Where(path, 0)} is {AttachmentTypeEngine.Article(type.Description)} with a VBA macro project ({vba.Name} storage)");
        return type;
    }

    /// <summary>Zip is also the container of OOXML, OpenDocument and JAR: tell them apart by their entry names.</summary>
    private FileType? ClassifyZip(ReadOnlyMemory<byte> data, string path, string name)
    {
        List<string> keys;
        try
        {
            using var archive = OpenArchive(data);
            keys = archive.Entries.Take(options.MaxArchiveEntries).Select(e => e.Key ?? "").ToList();
        }
        catch (Exception e) when (IsArchiveFailure(e))
        {
            return null; // InspectArchive reports it as unreadable
        }
        var extension = FileTypeDetector.ExtensionOf(name);
        if (keys.Contains("[Content_Types].xml", StringComparer.OrdinalIgnoreCase))
        {
            var type = keys.Any(k => k.StartsWith("word/", StringComparison.OrdinalIgnoreCase)) ? FileType.Docx
                : keys.Any(k => k.StartsWith("xl/", StringComparison.OrdinalIgnoreCase)) ? FileType.Xlsx
                : keys.Any(k => k.StartsWith("ppt/", StringComparison.OrdinalIgnoreCase)) ? FileType.Pptx
                : FileType.Ooxml;
            var project = keys.FirstOrDefault(k => k.EndsWith("vbaProject.bin", StringComparison.OrdinalIgnoreCase));
            var macroSheet = keys.FirstOrDefault(k => k.StartsWith("xl/macrosheets/", StringComparison.OrdinalIgnoreCase));
            if (project is not null)
                Add(FindingKinds.MacroDocument, $"{Where(path, 0)} is {AttachmentTypeEngine.Article(type.Description)} with a VBA macro project ({project})");
            else if (macroSheet is not null)
                Add(FindingKinds.MacroDocument, $"{Where(path, 0)} is {AttachmentTypeEngine.Article(type.Description)} with Excel 4.0 macro sheets ({macroSheet})");
            else if (extension is not null && MacroEnabledExtensions.Contains(extension))
                Add(FindingKinds.MacroDocument, $"{Where(path, 0)} is {AttachmentTypeEngine.Article(type.Description)} named as macro-enabled (.{extension})");
            return type;
        }
        if (keys.Contains("mimetype") && keys.Contains("content.xml"))
        {
            var basic = keys.FirstOrDefault(k => k.StartsWith("Basic/", StringComparison.Ordinal) && k != "Basic/script-lc.xml");
            if (basic is not null)
                Add(FindingKinds.MacroDocument, $"{Where(path, 0)} is an OpenDocument file with Basic macros ({basic})");
            return FileType.OpenDocument;
        }
        if (keys.Contains("META-INF/MANIFEST.MF", StringComparer.OrdinalIgnoreCase) &&
            keys.Any(k => k.EndsWith(".class", StringComparison.OrdinalIgnoreCase)))
            return FileType.Jar;
        return null;
    }

    private void Unwrap(ReadOnlyMemory<byte> data, FileType type, string path, int depth)
    {
        byte[] inner;
        bool complete;
        try
        {
            using var source = new MemoryStream(data.ToArray(), writable: false);
            using Stream decompressor = type == FileType.GZip ? new GZipStream(source, CompressionMode.Decompress)
                : type == FileType.BZip2 ? SharpCompress.Compressors.BZip2.BZip2Stream.Create(source, SharpCompress.Compressors.CompressionMode.Decompress, true, true, true)
                : new SharpCompress.Compressors.Xz.XZStream(source);
            (inner, complete) = ReadBudgeted(decompressor, long.MaxValue, path);
        }
        catch (Exception e) when (IsArchiveFailure(e))
        {
            Add(FindingKinds.UninspectableAttachment, $"{Where(path, depth)}: {type.Description} could not be decompressed ({e.GetType().Name})");
            return;
        }
        var innerName = LeafName(path);
        var dot = innerName.LastIndexOf('.');
        innerName = dot > 0 ? innerName[..dot] : innerName + ".out";
        if (innerName.EndsWith(".tgz", StringComparison.OrdinalIgnoreCase) || FileTypeDetector.ExtensionOf(LeafName(path)) is "tgz" or "tbz" or "tbz2" or "txz")
            innerName += ".tar";
        Inspect(inner, complete, $"{path} > {innerName}", depth, inWrapper: true);
    }

    private void InspectArchive(ReadOnlyMemory<byte> data, FileType type, string path, int depth)
    {
        try
        {
            using var archive = OpenArchive(data);
            var encrypted = archive.IsEncrypted;
            CheckDeclaredSize(archive, path, depth);
            foreach (var (entry, open) in EntriesOf(archive))
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (entry.IsDirectory)
                    continue;
                if (++entries > options.MaxArchiveEntries)
                    throw Limit($"{Where(path, depth)}: more than {options.MaxArchiveEntries:N0} archive entries (possible archive bomb); the rest were not inspected");
                var entryPath = $"{path} > {entry.Key}";
                if (entry.IsEncrypted)
                {
                    encrypted = true;
                    var extension = FileTypeDetector.ExtensionOf(entry.Key);
                    if (extension is not null && RunnableExtensions.Contains(extension))
                        Add(FileTypeDetector.IsScriptExtension(extension) ? FindingKinds.Script : FindingKinds.Executable,
                            $"'{attachment}' holds {entryPath}, encrypted and named like a program (.{extension})");
                    continue;
                }
                if (!string.IsNullOrEmpty(entry.LinkTarget))
                    continue;
                using var stream = open();
                var (content, complete) = ReadEntry(stream, entryPath);
                Inspect(content, complete, entryPath, depth + 1, inWrapper: false);
            }
            if (encrypted)
                Add(FindingKinds.EncryptedArchive, $"{Where(path, depth)} is an encrypted {type.Description}; encrypted entries cannot be inspected");
        }
        catch (LimitReachedException)
        {
            throw;
        }
        catch (Exception e) when (IsEncryptionFailure(e))
        {
            Add(FindingKinds.EncryptedArchive, $"{Where(path, depth)} is an encrypted {type.Description} (its entry list is encrypted too)");
        }
        catch (Exception e) when (IsArchiveFailure(e))
        {
            Add(FindingKinds.UninspectableAttachment, $"{Where(path, depth)}: the {type.Description} could not be read ({e.GetType().Name}: {Shorten(e.Message)})");
        }
    }

    /// <summary>
    /// Sizes an archive declares for its entries, added up over the attachment: past the limit it is
    /// reported as a possible bomb. Inspection goes on (only entry heads are read, and the real bytes
    /// are budgeted), so a program in a large but honest archive is still found.
    /// </summary>
    private void CheckDeclaredSize(IArchive archive, string path, int depth)
    {
        foreach (var entry in archive.Entries.Take(options.MaxArchiveEntries))
            declared += entry.IsDirectory ? 0 : Math.Max(0, entry.Size);
        if (declared > options.MaxUncompressedBytes && !declaredReported)
        {
            declaredReported = true;
            Add(FindingKinds.UninspectableAttachment,
                $"{Where(path, depth)}: entries declare more than {options.MaxUncompressedBytes:N0} bytes uncompressed (possible zip bomb); only their first bytes were inspected", force: true);
        }
    }

    /// <summary>Entries with a way to open each; solid archives are read front to back once instead of once per entry.</summary>
    private static IEnumerable<(IEntry Entry, Func<Stream> Open)> EntriesOf(IArchive archive)
    {
        if (archive.IsSolid)
        {
            using var reader = archive.ExtractAllEntries();
            while (reader.MoveToNextEntry())
                yield return (reader.Entry, () => reader.OpenEntryStream());
            yield break;
        }
        foreach (var entry in archive.Entries)
            yield return (entry, entry.OpenEntryStream);
    }

    private static IArchive OpenArchive(ReadOnlyMemory<byte> data)
    {
        var stream = new MemoryStream(data.ToArray(), writable: false);
        return ArchiveFactory.OpenArchive(stream, new ReaderOptions { LeaveStreamOpen = false });
    }

    /// <summary>
    /// The head of an entry, and all of it when the head says it is a container (archive, OLE2, zip):
    /// programs and scripts are told from their first bytes, so nothing else is decompressed in full.
    /// </summary>
    private (byte[] Content, bool Complete) ReadEntry(Stream stream, string path)
    {
        var (head, headComplete) = ReadBudgeted(stream, FileTypeDetector.HeadLength, path);
        if (headComplete)
            return (head, true);
        var type = FileTypeDetector.Detect(head, LeafName(path));
        if (!(type.IsArchive || type == FileType.Ole2 || type == FileType.Zip))
            return (head, false);
        var (rest, complete) = ReadBudgeted(stream, long.MaxValue, path);
        var all = new byte[head.Length + rest.Length];
        head.CopyTo(all, 0);
        rest.CopyTo(all, head.Length);
        return (all, complete);
    }

    /// <summary>Reads up to <paramref name="max"/> bytes, charging them to the attachment's decompression budget.</summary>
    private (byte[] Content, bool Complete) ReadBudgeted(Stream stream, long max, string path)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        while (buffer.Length < max)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var want = (int)Math.Min(chunk.Length, max - buffer.Length);
            var read = stream.Read(chunk, 0, want);
            if (read == 0)
                return (buffer.ToArray(), true);
            decompressed += read;
            if (decompressed > options.MaxUncompressedBytes)
                throw Limit($"{Where(path, 1)}: more than {options.MaxUncompressedBytes:N0} bytes once decompressed (possible zip bomb); not inspected further");
            buffer.Write(chunk, 0, read);
        }
        return (buffer.ToArray(), false);
    }

    private LimitReachedException Limit(string reason)
    {
        if (!limitReported)
        {
            limitReported = true;
            Add(FindingKinds.UninspectableAttachment, reason, force: true);
        }
        return new LimitReachedException();
    }

    private void Add(string kind, string reason, bool force = false)
    {
        if (!seen.Add($"{kind}\n{reason}"))
            return;
        if (findings.Count >= options.MaxFindingsPerAttachment && !force)
            return;
        findings.Add(new Finding(Engine, kind, reason, Subject: attachment));
    }

    private string Describe(string path, int depth, FileType type, string name)
    {
        var extension = FileTypeDetector.ExtensionOf(name);
        var disguise = extension is not null && !type.MatchesExtension(extension) ? $", disguised as .{extension}" : "";
        return path == attachment
            ? $"'{attachment}' is {AttachmentTypeEngine.Article(type.Description)}{disguise}"
            : $"'{attachment}' holds {path}: {AttachmentTypeEngine.Article(type.Description)}{disguise}";
    }

    private string Where(string path, int depth) => depth == 0 && path == attachment ? $"'{attachment}'" : $"'{attachment}' ({path})";

    private static string LeafName(string path)
    {
        var gt = path.LastIndexOf(" > ", StringComparison.Ordinal);
        var name = gt < 0 ? path : path[(gt + 3)..];
        var slash = Math.Max(name.LastIndexOf('/'), name.LastIndexOf('\\'));
        return slash < 0 ? name : name[(slash + 1)..];
    }

    private static ReadOnlySpan<byte> Head(ReadOnlySpan<byte> data) => data[..Math.Min(data.Length, FileTypeDetector.HeadLength)];

    private static string Shorten(string message) => message.Length <= 120 ? message : message[..117] + "...";

    private static bool IsEncryptionFailure(Exception e) =>
        e is SharpCompress.Common.CryptographicException ||
        e.Message.Contains("password", StringComparison.OrdinalIgnoreCase) ||
        e.Message.Contains("encrypt", StringComparison.OrdinalIgnoreCase);

    /// <summary>What a hostile or broken archive can make a decompressor throw; anything else is a bug and propagates.</summary>
    private static bool IsArchiveFailure(Exception e) =>
        e is SharpCompressException or IOException or InvalidDataException or NotSupportedException or InvalidOperationException
            or ArgumentException or IndexOutOfRangeException or OverflowException or NullReferenceException or FormatException
            or System.Security.Cryptography.CryptographicException;

    /// <summary>The attachment's budget is spent: stop looking, keep what was found.</summary>
    private sealed class LimitReachedException : Exception;
}
