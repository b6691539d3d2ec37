using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Frozen;
using System.Reflection;
using System.Text;

namespace Postern.Core.Scanning.Engines;

/// <summary>
/// Tells what a file really is from its first bytes, never from its name or declared MIME type
/// (an <c>invoice.pdf</c> that starts with <c>MZ</c> is a program). The name counts only where the
/// content cannot say: text is a script when its extension makes Windows run it (a <c>.js</c> file is
/// run by the script host whatever it contains), and a few content markers make text a script
/// whatever its name. OLE2 and zip containers are only recognised here; what is inside them
/// (macros, OOXML, JAR) is decided by <see cref="AttachmentTypeEngine"/>.
/// </summary>
public static class FileTypeDetector
{
    /// <summary>How many leading bytes detection looks at: enough for the ISO 9660 descriptor at 32 KiB.</summary>
    public const int HeadLength = 64 * 1024;

    /// <summary>Text extensions a script host runs on a double-click (Windows) or a shell runs (Unix).</summary>
    private static readonly Dictionary<string, (string Id, string Description)> ScriptExtensions = new(StringComparer.OrdinalIgnoreCase)
    {
        ["js"] = ("script-js", "JScript/JavaScript file"),
        ["jse"] = ("script-js", "encoded JScript file"),
        ["mjs"] = ("script-js", "JavaScript module"),
        ["vbs"] = ("script-vbs", "VBScript file"),
        ["vbe"] = ("script-vbs", "encoded VBScript file"),
        ["vb"] = ("script-vbs", "VBScript file"),
        ["wsf"] = ("script-wsh", "Windows Script File"),
        ["wsc"] = ("script-wsh", "Windows Script Component"),
        ["wsh"] = ("script-wsh", "Windows Script Host settings"),
        ["sct"] = ("script-wsh", "Windows scriptlet"),
        ["ps1"] = ("script-powershell", "PowerShell script"),
        ["psm1"] = ("script-powershell", "PowerShell module"),
        ["psd1"] = ("script-powershell", "PowerShell data file"),
        ["ps1xml"] = ("script-powershell", "PowerShell format file"),
        ["psc1"] = ("script-powershell", "PowerShell console file"),
        ["bat"] = ("script-batch", "batch file"),
        ["cmd"] = ("script-batch", "batch file"),
        ["hta"] = ("script-hta", "HTML application (HTA)"),
        ["reg"] = ("script-reg", "registry file"),
        ["inf"] = ("script-inf", "setup information file"),
        ["scf"] = ("script-scf", "shell command file"),
        ["url"] = ("script-url", "Internet shortcut"),
        ["msc"] = ("script-msc", "Management console file (MSC)"),
        ["xll"] = ("script-xll", "Excel add-in"),
        ["settingcontent-ms"] = ("script-settingcontent", "Windows settings shortcut"),
        ["sh"] = ("script-shell", "shell script"),
        ["command"] = ("script-shell", "macOS shell command"),
        ["applescript"] = ("script-applescript", "AppleScript"),
        ["scpt"] = ("script-applescript", "AppleScript"),
    };

    /// <summary>
    /// Markers that make text a script whatever its name: they are what droppers are written with,
    /// and do not occur in prose. Matched case-insensitively on the first <see cref="HeadLength"/> bytes.
    /// </summary>
    private static readonly (string Marker, string Id, string Description)[] ScriptMarkers =
    [
        ("<hta:application", "script-hta", "HTML application (HTA)"),
        ("wscript.shell", "script-wsh", "Windows Script Host code (WScript.Shell)"),
        ("wscript.createobject", "script-wsh", "Windows Script Host code (WScript.CreateObject)"),
        ("createobject(\"wscript", "script-vbs", "VBScript (CreateObject WScript)"),
        ("createobject(\"scripting.filesystemobject", "script-vbs", "VBScript (FileSystemObject)"),
        ("createobject(\"msxml2.xmlhttp", "script-vbs", "VBScript downloader (MSXML2.XMLHTTP)"),
        ("createobject(\"adodb.stream", "script-vbs", "VBScript (ADODB.Stream)"),
        ("new activexobject(", "script-js", "JScript (ActiveXObject)"),
        ("-encodedcommand", "script-powershell", "PowerShell (-EncodedCommand)"),
        ("invoke-expression", "script-powershell", "PowerShell (Invoke-Expression)"),
        ("net.webclient", "script-powershell", "PowerShell downloader (Net.WebClient)"),
        ("downloadstring(", "script-powershell", "PowerShell downloader (DownloadString)"),
        ("invoke-webrequest", "script-powershell", "PowerShell (Invoke-WebRequest)"),
        ("@echo off", "script-batch", "batch file (@echo off)"),
        ("<job id=", "script-wsh", "Windows Script File (job)"),
        ("<scriptlet", "script-wsh", "Windows scriptlet"),
    ];

    /// <summary>Script in HTML that builds a file or moves the browser on: how HTML smuggling and credential phishing pages work.</summary>
    private static readonly string[] HtmlSmugglingMarkers =
    [
        "atob(", "new blob(", "createobjecturl(", "mssaveoropenblob", "document.write(unescape(", "window.location.replace(", "eval(atob(", "fromcharcode(",
    ];

    /// <summary>Every script marker at once: one pass over the text tells whether any is there (usually none is).</summary>
    private static readonly SearchValues<string> AnyScriptMarker =
        SearchValues.Create(ScriptMarkers.Select(m => m.Marker).ToArray(), StringComparison.OrdinalIgnoreCase);

    /// <summary>What makes text an image or a page worth a closer look, in one pass.</summary>
    private static readonly SearchValues<string> AnyMarkupMarker =
        SearchValues.Create(["<svg", "<html", "<!doctype html"], StringComparison.OrdinalIgnoreCase);

    /// <summary>Ids of the script types the text sniffer builds from content alone, with no extension or marker table behind them.</summary>
    private const string EncodedScriptId = "script-encoded", UnixScriptId = "script-shell", SvgScriptId = "script-svg", HtmlSmugglingId = "script-html";

    private static FrozenSet<string>? knownIds;

    /// <summary>
    /// Every type id detection can give (<see cref="FileType.Id"/>), for validating what a policy rule names:
    /// a misspelt id would otherwise be a condition that silently never matches.
    /// </summary>
    public static IReadOnlySet<string> KnownIds => knownIds ??= typeof(FileType).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(f => f.FieldType == typeof(FileType)).Select(f => ((FileType)f.GetValue(null)!).Id)
        .Concat(ScriptExtensions.Values.Select(v => v.Id)).Concat(ScriptMarkers.Select(m => m.Id))
        .Concat([EncodedScriptId, UnixScriptId, SvgScriptId, HtmlSmugglingId])
        .ToFrozenSet(StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// The true type of content that starts with <paramref name="head"/> (at least the first
    /// <see cref="HeadLength"/> bytes where there are that many) and is named <paramref name="fileName"/>.
    /// </summary>
    public static FileType Detect(ReadOnlySpan<byte> head, string? fileName)
    {
        if (head.IsEmpty)
            return FileType.Empty;
        var extension = ExtensionOf(fileName);
        var binary = DetectBinary(head);
        if (binary is not null)
            return binary;

        if (LooksLikeText(head))
            return DetectText(head, extension);

        // Unsigned binary: only a name Windows would run it by says more (.com files have no header).
        if (extension is "com")
            return FileType.ComByName;
        return FileType.Unknown;
    }

    /// <summary>The lower-case extension of a file name without the dot, or null (trailing dots and spaces ignored, as Windows does).</summary>
    public static string? ExtensionOf(string? fileName)
    {
        if (string.IsNullOrEmpty(fileName))
            return null;
        var name = fileName.TrimEnd('.', ' ', '\t');
        var slash = Math.Max(name.LastIndexOf('/'), name.LastIndexOf('\\'));
        if (slash >= 0)
            name = name[(slash + 1)..];
        var dot = name.LastIndexOf('.');
        return dot < 0 || dot == name.Length - 1 ? null : name[(dot + 1)..].ToLowerInvariant();
    }

    /// <summary>Whether Windows runs a file of this extension as a program or script (for names inside archives too).</summary>
    public static bool IsScriptExtension(string? extension) => extension is not null && ScriptExtensions.ContainsKey(extension);

    private static FileType? DetectBinary(ReadOnlySpan<byte> b)
    {
        if (b.StartsWith("MZ"u8))
            return IsPe(b) ? FileType.Pe : FileType.DosMz;
        if (Has(b, [0x7F, (byte)'E', (byte)'L', (byte)'F']))
            return FileType.Elf;
        if (b.Length >= 4)
        {
            var be = BinaryPrimitives.ReadUInt32BigEndian(b);
            if (be is 0xFEEDFACE or 0xFEEDFACF or 0xCEFAEDFE or 0xCFFAEDFE)
                return FileType.MachO;
            if (be == 0xCAFEBABE)
            {
                // Shared by fat Mach-O binaries (a small architecture count follows) and Java classes (version ≥ 45).
                var next = b.Length >= 8 ? BinaryPrimitives.ReadUInt32BigEndian(b[4..]) : 0;
                return next is > 0 and < 20 ? FileType.MachO : FileType.JavaClass;
            }
        }
        if (Has(b, [0x4C, 0x00, 0x00, 0x00, 0x01, 0x14, 0x02, 0x00]))
            return FileType.Lnk;
        if (b.StartsWith("ITSF"u8))
            return FileType.Chm;
        if (Has(b, [0x00, (byte)'a', (byte)'s', (byte)'m']))
            return FileType.Wasm;

        if (b.StartsWith("PK\x03\x04"u8) || b.StartsWith("PK\x05\x06"u8) || b.StartsWith("PK\x07\x08"u8))
            return FileType.Zip;
        if (Has(b, [0x37, 0x7A, 0xBC, 0xAF, 0x27, 0x1C]))
            return FileType.SevenZip;
        if (b.StartsWith("Rar!\x1A\x07"u8))
            return FileType.Rar;
        if (Has(b, [0x1F, 0x8B]))
            return FileType.GZip;
        if (b.StartsWith("BZh"u8) && b.Length > 3 && b[3] is >= (byte)'1' and <= (byte)'9')
            return FileType.BZip2;
        if (Has(b, [0xFD, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0x00]))
            return FileType.Xz;
        if (Has(b, [0x28, 0xB5, 0x2F, 0xFD]))
            return FileType.Zstd;
        if (b.StartsWith("MSCF\0\0\0\0"u8))
            return FileType.Cab;
        if (Has(b, [0x60, 0xEA]) && b.Length > 10)
            return FileType.Arj;
        if (b.Length > 14 && b.Slice(7, 7).SequenceEqual("**ACE**"u8))
            return FileType.Ace;
        if (IsTar(b))
            return FileType.Tar;
        if (b.StartsWith("vhdxfile"u8) || b.StartsWith("conectix"u8))
            return FileType.Vhd;
        if (IsIso(b))
            return FileType.Iso;

        if (Has(b, [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]))
            return FileType.Ole2;
        if (Has(b, [0xE4, 0x52, 0x5C, 0x7B, 0x8C, 0xD8, 0xA7, 0x4D, 0xAE, 0xB1, 0x53, 0x78, 0xD0, 0x29, 0x96, 0xD3]))
            return FileType.OneNote;
        if (b[..Math.Min(b.Length, 1024)].IndexOf("%PDF-"u8) >= 0)
            return FileType.Pdf;
        if (b.StartsWith("{\\rt"u8))
            return FileType.Rtf;

        if (Has(b, [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]))
            return FileType.Png;
        if (Has(b, [0xFF, 0xD8, 0xFF]))
            return FileType.Jpeg;
        if (b.StartsWith("GIF87a"u8) || b.StartsWith("GIF89a"u8))
            return FileType.Gif;
        if (b.StartsWith("II*\0"u8) || b.StartsWith("MM\0*"u8))
            return FileType.Tiff;
        if (b.Length >= 12 && b.StartsWith("RIFF"u8))
            return b.Slice(8, 4).SequenceEqual("WEBP"u8) ? FileType.Webp : FileType.Media;
        if (b.StartsWith("BM"u8) && b.Length > 26 && b[14] is 12 or 40 or 52 or 56 or 108 or 124)
            return FileType.Bmp;
        if (Has(b, [0x00, 0x00, 0x01, 0x00]) && b.Length > 22 && b[4] > 0)
            return FileType.Ico;
        if (b.StartsWith("ID3"u8) || b.StartsWith("OggS"u8) || b.StartsWith("fLaC"u8) ||
            (b.Length > 12 && b.Slice(4, 4).SequenceEqual("ftyp"u8)))
            return FileType.Media;
        // Windows Script Encoder output (.vbe/.jse): text, but recognised by its own header.
        if (b.StartsWith("#@~^"u8))
            return new FileType(EncodedScriptId, "encoded Windows script (#@~^)", FileCategory.Script, "vbe jse");
        return null;
    }

    private static bool Has(ReadOnlySpan<byte> data, ReadOnlySpan<byte> magic) => data.StartsWith(magic);

    private static bool IsPe(ReadOnlySpan<byte> b)
    {
        if (b.Length < 0x40)
            return false;
        var offset = BinaryPrimitives.ReadInt32LittleEndian(b[0x3C..]);
        return offset > 0 && offset <= b.Length - 4 && b.Slice(offset, 4).SequenceEqual("PE\0\0"u8);
    }

    /// <summary>POSIX tar says "ustar" at 257; old (v7) tar only has its header checksum to go by.</summary>
    private static bool IsTar(ReadOnlySpan<byte> b)
    {
        if (b.Length < 512 || b[0] == 0)
            return false;
        if (b.Slice(257, 5).SequenceEqual("ustar"u8))
            return true;
        var field = b.Slice(148, 8);
        var stored = 0;
        var digits = 0;
        foreach (var c in field)
        {
            if (c is >= (byte)'0' and <= (byte)'7')
            {
                stored = stored * 8 + (c - '0');
                digits++;
            }
            else if (c is not ((byte)' ' or 0))
                return false;
        }
        if (digits == 0)
            return false;
        var sum = 0;
        for (var i = 0; i < 512; i++)
            sum += i is >= 148 and < 156 ? ' ' : b[i];
        return sum == stored;
    }

    private static bool IsIso(ReadOnlySpan<byte> b)
    {
        // Volume descriptors start at sector 16 (byte 32768): "CD001" for ISO 9660, "BEA01"/"NSR0x" for UDF.
        foreach (var offset in (ReadOnlySpan<int>)[0x8001, 0x8801, 0x9001])
        {
            if (b.Length < offset + 5)
                return false;
            var id = b.Slice(offset, 5);
            if (id.SequenceEqual("CD001"u8) || id.SequenceEqual("BEA01"u8) || id.SequenceEqual("NSR02"u8) || id.SequenceEqual("NSR03"u8))
                return true;
        }
        return false;
    }

    /// <summary>No NULs (or UTF-16 with a byte-order mark) and few control characters.</summary>
    private static bool LooksLikeText(ReadOnlySpan<byte> b)
    {
        if (Has(b, [0xFF, 0xFE]) || Has(b, [0xFE, 0xFF]))
            return true;
        var sample = b[..Math.Min(b.Length, 8192)];
        var control = 0;
        foreach (var c in sample)
        {
            if (c == 0)
                return false;
            if (c < 0x20 && c is not (byte)'\n' and not (byte)'\r' and not (byte)'\t' and not 0x0C and not 0x1B)
                control++;
        }
        return control * 20 < sample.Length;
    }

    private static FileType DetectText(ReadOnlySpan<byte> head, string? extension)
    {
        var text = DecodeForSniffing(head);
        if (text.AsSpan().ContainsAny(AnyScriptMarker))
        {
            // The list order says which marker names the script when several are there.
            foreach (var (marker, id, description) in ScriptMarkers)
            {
                if (text.Contains(marker, StringComparison.OrdinalIgnoreCase))
                    return new FileType(id, description, FileCategory.Script, ExtensionsOf(id));
            }
        }
        var trimmed = text.AsSpan().TrimStart();
        if (trimmed.StartsWith("#!") && trimmed.Length > 3 && trimmed[2] is '/' or ' ')
            return new FileType(UnixScriptId, "Unix script (#!)", FileCategory.Script, "sh bash command py pl rb");

        if (extension is not null && ScriptExtensions.TryGetValue(extension, out var script))
            return new FileType(script.Id, script.Description, FileCategory.Script, ExtensionsOf(script.Id));

        var markup = text.AsSpan().ContainsAny(AnyMarkupMarker);
        var isSvg = extension is "svg" || (markup && text.Contains("<svg", StringComparison.OrdinalIgnoreCase));
        var isHtml = !isSvg && (extension is "htm" or "html" or "shtml" or "xhtml" or "mht" or "mhtml" ||
            (markup && (text.Contains("<html", StringComparison.OrdinalIgnoreCase) || text.Contains("<!doctype html", StringComparison.OrdinalIgnoreCase))));
        if (isSvg || isHtml)
        {
            var hasScript = text.Contains("<script", StringComparison.OrdinalIgnoreCase) ||
                text.Contains("javascript:", StringComparison.OrdinalIgnoreCase);
            // An image has no business running code; an HTML page does, so only the smuggling idioms count there.
            if (hasScript && (isSvg || HtmlSmugglingMarkers.Any(m => text.Contains(m, StringComparison.OrdinalIgnoreCase))))
                return new FileType(isSvg ? SvgScriptId : HtmlSmugglingId, isSvg ? "SVG image with script" : "HTML with script that builds a file or redirects (HTML smuggling)",
                    FileCategory.Script, isSvg ? "svg" : "htm html");
            return isSvg ? FileType.Svg : FileType.Html;
        }
        if (trimmed.StartsWith("<?xml"))
            return FileType.Xml;
        return FileType.Text;
    }

    private static string ExtensionsOf(string scriptId) =>
        string.Join(' ', ScriptExtensions.Where(e => e.Value.Id == scriptId).Select(e => e.Key));

    private static string DecodeForSniffing(ReadOnlySpan<byte> head)
    {
        if (Has(head, [0xFF, 0xFE]))
            return Encoding.Unicode.GetString(head[2..]);
        if (Has(head, [0xFE, 0xFF]))
            return Encoding.BigEndianUnicode.GetString(head[2..]);
        // Latin-1 maps every byte to one char: ASCII markers are found in UTF-8 and 8-bit text alike.
        return Encoding.Latin1.GetString(head);
    }
}
