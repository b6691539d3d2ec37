namespace Postern.Core.Scanning.Engines;

/// <summary>What kind of thing a file is, coarse enough for policy and the findings it leads to.</summary>
public enum FileCategory
{
    /// <summary>Binary content no signature matched: judged by nothing but its name.</summary>
    Unknown,

    /// <summary>Plain text (including HTML, XML, CSV) that is not a script.</summary>
    Text,

    /// <summary>Office, PDF, RTF and similar documents (macros are reported separately).</summary>
    Document,

    Image,

    Media,

    /// <summary>Containers of other files that Postern opens (zip, 7z, rar, tar) or unwraps (gzip, bzip2, xz).</summary>
    Archive,

    /// <summary>Containers Postern recognises but cannot open (ISO/UDF/VHD disk images, CAB, zstd).</summary>
    OpaqueContainer,

    /// <summary>Native or managed program code the recipient's machine can run (PE, ELF, Mach-O, LNK, MSI, JAR, CHM).</summary>
    Executable,

    /// <summary>Text a Windows or Unix script host runs (JS, VBS, PowerShell, batch, HTA, shell, …).</summary>
    Script,
}

/// <summary>
/// The true type of some content, from its bytes (and, for text, its name): a stable short
/// <see cref="Id"/> for rules and tests, and a description for the administrator.
/// </summary>
/// <param name="Id">Short stable identifier, e.g. "pe", "zip", "docx", "script-vbs".</param>
/// <param name="Description">What it is, for the trace ("Windows executable (PE)").</param>
/// <param name="Category">Coarse class that decides which finding, if any, it leads to.</param>
/// <param name="Extensions">File-name extensions (without dot) this type normally carries; empty when any is plausible.</param>
public sealed record FileType(string Id, string Description, FileCategory Category, IReadOnlyList<string> Extensions)
{
    public FileType(string id, string description, FileCategory category, string extensions = "")
        : this(id, description, category, extensions.Split(' ', StringSplitOptions.RemoveEmptyEntries))
    {
    }

    public bool IsArchive => Category == FileCategory.Archive;

    /// <summary>Single-stream compression (gzip, bzip2, xz): unwrapping one is not "an archive inside an archive".</summary>
    public bool IsCompressionWrapper => Id is "gzip" or "bzip2" or "xz";

    /// <summary>Whether a file name with this extension would be expected for this content.</summary>
    public bool MatchesExtension(string? extension) =>
        Extensions.Count == 0 || (extension is not null && Extensions.Contains(extension, StringComparer.OrdinalIgnoreCase));

    public override string ToString() => $"{Description} [{Id}]";

    // Signature-identified types. Documents from OLE2 and zip containers are refined after looking inside.
    public static readonly FileType Unknown = new("unknown", "unidentified binary data", FileCategory.Unknown);
    public static readonly FileType Empty = new("empty", "empty file", FileCategory.Unknown);
    public static readonly FileType Pe = new("pe", "Windows executable (PE)", FileCategory.Executable, "exe dll scr cpl sys ocx com pif drv efi mui");
    public static readonly FileType DosMz = new("mz", "DOS/Windows executable (MZ)", FileCategory.Executable, "exe com");
    public static readonly FileType Elf = new("elf", "Linux/Unix executable (ELF)", FileCategory.Executable, "so o elf bin run");
    public static readonly FileType MachO = new("macho", "macOS executable (Mach-O)", FileCategory.Executable, "dylib bundle");
    public static readonly FileType JavaClass = new("java-class", "Java class file", FileCategory.Executable, "class");
    public static readonly FileType Jar = new("jar", "Java archive (JAR)", FileCategory.Executable, "jar");
    public static readonly FileType Lnk = new("lnk", "Windows shortcut (LNK)", FileCategory.Executable, "lnk");
    public static readonly FileType Chm = new("chm", "Compiled HTML Help (CHM)", FileCategory.Executable, "chm");
    public static readonly FileType Msi = new("msi", "Windows Installer package (MSI)", FileCategory.Executable, "msi msp");
    public static readonly FileType ComByName = new("com", "DOS executable (.com, no signature)", FileCategory.Executable, "com");
    public static readonly FileType Wasm = new("wasm", "WebAssembly module", FileCategory.Executable, "wasm");

    public static readonly FileType Zip = new("zip", "zip archive", FileCategory.Archive, "zip zipx");
    public static readonly FileType SevenZip = new("7z", "7-Zip archive", FileCategory.Archive, "7z");
    public static readonly FileType Rar = new("rar", "RAR archive", FileCategory.Archive, "rar");
    public static readonly FileType Tar = new("tar", "tar archive", FileCategory.Archive, "tar");
    public static readonly FileType GZip = new("gzip", "gzip compressed data", FileCategory.Archive, "gz tgz gzip");
    public static readonly FileType BZip2 = new("bzip2", "bzip2 compressed data", FileCategory.Archive, "bz2 tbz tbz2");
    public static readonly FileType Xz = new("xz", "xz compressed data", FileCategory.Archive, "xz txz");
    public static readonly FileType Arj = new("arj", "ARJ archive", FileCategory.Archive, "arj");
    public static readonly FileType Ace = new("ace", "ACE archive", FileCategory.Archive, "ace");
    public static readonly FileType Zstd = new("zstd", "Zstandard compressed data", FileCategory.OpaqueContainer, "zst");
    public static readonly FileType Cab = new("cab", "Microsoft cabinet (CAB)", FileCategory.OpaqueContainer, "cab");
    public static readonly FileType Iso = new("iso", "ISO 9660/UDF disk image", FileCategory.OpaqueContainer, "iso img udf");
    public static readonly FileType Vhd = new("vhd", "virtual hard disk (VHD/VHDX)", FileCategory.OpaqueContainer, "vhd vhdx");

    public static readonly FileType Ole2 = new("ole2", "OLE2 compound file", FileCategory.Document, "doc dot xls xlt xla ppt pot pps msg");
    public static readonly FileType Doc = new("doc", "Word 97-2003 document", FileCategory.Document, "doc dot wiz");
    public static readonly FileType Xls = new("xls", "Excel 97-2003 workbook", FileCategory.Document, "xls xlt xla xlw");
    public static readonly FileType Ppt = new("ppt", "PowerPoint 97-2003 presentation", FileCategory.Document, "ppt pot pps ppa");
    public static readonly FileType OutlookMsg = new("outlook-msg", "Outlook message (MSG)", FileCategory.Document, "msg oft");
    public static readonly FileType EncryptedOffice = new("office-encrypted", "password-protected Office document", FileCategory.Document, "docx docm xlsx xlsm xlsb pptx pptm doc xls ppt");
    public static readonly FileType Docx = new("docx", "Word document (OOXML)", FileCategory.Document, "docx docm dotx dotm");
    public static readonly FileType Xlsx = new("xlsx", "Excel workbook (OOXML)", FileCategory.Document, "xlsx xlsm xltx xltm xlam xlsb");
    public static readonly FileType Pptx = new("pptx", "PowerPoint presentation (OOXML)", FileCategory.Document, "pptx pptm potx potm ppsx ppsm ppam sldx sldm");
    public static readonly FileType Ooxml = new("ooxml", "Office Open XML package", FileCategory.Document, "docx docm xlsx xlsm pptx pptm vsdx vsdm xps");
    public static readonly FileType OpenDocument = new("odf", "OpenDocument file", FileCategory.Document, "odt ods odp odg ott ots otp");
    public static readonly FileType Pdf = new("pdf", "PDF document", FileCategory.Document, "pdf");
    public static readonly FileType Rtf = new("rtf", "RTF document", FileCategory.Document, "rtf doc");
    public static readonly FileType OneNote = new("onenote", "OneNote section", FileCategory.Document, "one onepkg");

    public static readonly FileType Png = new("png", "PNG image", FileCategory.Image, "png");
    public static readonly FileType Jpeg = new("jpeg", "JPEG image", FileCategory.Image, "jpg jpeg jpe jfif");
    public static readonly FileType Gif = new("gif", "GIF image", FileCategory.Image, "gif");
    public static readonly FileType Bmp = new("bmp", "BMP image", FileCategory.Image, "bmp dib");
    public static readonly FileType Tiff = new("tiff", "TIFF image", FileCategory.Image, "tif tiff");
    public static readonly FileType Webp = new("webp", "WebP image", FileCategory.Image, "webp");
    public static readonly FileType Ico = new("ico", "Windows icon", FileCategory.Image, "ico cur");
    public static readonly FileType Media = new("media", "audio or video", FileCategory.Media);

    public static readonly FileType Text = new("text", "text", FileCategory.Text);
    public static readonly FileType Html = new("html", "HTML document", FileCategory.Text, "htm html shtml xhtml mht mhtml");
    public static readonly FileType Svg = new("svg", "SVG image", FileCategory.Text, "svg svgz");
    public static readonly FileType Xml = new("xml", "XML document", FileCategory.Text);
}
