using System.IO.Compression;
using Postern.Core.Configuration;
using Postern.Core.Scanning;
using Postern.Core.Scanning.Engines;

namespace Postern.Core.Tests.Scanning;

public sealed class AttachmentTypeEngineTests
{
    private static async Task<IReadOnlyList<Finding>> ScanAsync(AttachmentScanOptions? options, params (string Name, byte[] Data)[] attachments)
    {
        var engine = new AttachmentTypeEngine(options ?? new AttachmentScanOptions());
        var findings = await engine.ScanAsync(ScanContexts.For(ScanContexts.Message(attachments: attachments)), CancellationToken.None);
        Assert.DoesNotContain(findings, f => f.Kind == FindingKinds.EngineUnavailable);
        Assert.All(findings, f => Assert.Equal(AttachmentTypeEngine.EngineName, f.Engine));
        return findings;
    }

    private static Task<IReadOnlyList<Finding>> ScanAsync(params (string Name, byte[] Data)[] attachments) => ScanAsync(null, attachments);

    private static Finding Single(IReadOnlyList<Finding> findings, string kind) =>
        Assert.Single(findings, f => f.Kind == kind);

    [Fact]
    public async Task Finds_a_program_named_as_a_pdf_by_its_content()
    {
        var findings = await ScanAsync(("invoice.pdf", TestFiles.Pe()));

        var executable = Single(findings, FindingKinds.Executable);
        Assert.Equal("invoice.pdf", executable.Subject);
        Assert.Contains("Windows executable (PE)", executable.Reason);
        Assert.Contains("disguised as .pdf", executable.Reason);
        Assert.StartsWith("pe:", Single(findings, FindingKinds.AttachmentType).Reason);
    }

    [Theory]
    [InlineData("tool", "elf")]
    [InlineData("photo.jpg", "macho")]
    [InlineData("shortcut.txt", "lnk")]
    [InlineData("setup.doc", "msi")]
    public async Task Finds_other_programs_whatever_their_name(string name, string typeId)
    {
        var data = typeId switch
        {
            "elf" => TestFiles.Elf(),
            "macho" => TestFiles.MachO(),
            "lnk" => TestFiles.Lnk(),
            _ => TestFiles.Msi(),
        };

        var findings = await ScanAsync((name, data));

        Assert.Equal(name, Single(findings, FindingKinds.Executable).Subject);
        Assert.StartsWith(typeId + ":", Single(findings, FindingKinds.AttachmentType).Reason);
    }

    [Fact]
    public async Task Finds_scripts_by_name_and_by_content_when_renamed()
    {
        var findings = await ScanAsync(
            ("update.js", TestFiles.Text("var x = 1;\n")),
            ("readme.txt", TestFiles.Text("Set sh = CreateObject(\"WScript.Shell\")\r\nsh.Run \"calc.exe\"\r\n")),
            ("notes.pdf", TestFiles.Text("powershell -NoProfile -EncodedCommand SQBFAFgA\r\n")),
            ("page.hta", TestFiles.Text("<html><head><HTA:APPLICATION ID=\"x\"></head></html>")),
            ("run.bat", TestFiles.Text("@echo off\r\ndel *.*\r\n")));

        var scripts = findings.Where(f => f.Kind == FindingKinds.Script).ToList();
        Assert.Equal(["update.js", "readme.txt", "notes.pdf", "page.hta", "run.bat"], scripts.Select(f => f.Subject));
        Assert.Contains("WScript.Shell", scripts[1].Reason);
        Assert.Contains("PowerShell", scripts[2].Reason);
    }

    [Fact]
    public async Task Leaves_ordinary_documents_and_text_alone()
    {
        var findings = await ScanAsync(
            ("report.pdf", TestFiles.Pdf()),
            ("logo.png", TestFiles.Png()),
            ("notes.txt", TestFiles.Text("Meeting notes: bring the slides.\r\n")),
            ("letter.docx", TestFiles.WordPackage(vbaProject: false)),
            ("old.doc", TestFiles.WordDocument()));

        Assert.All(findings, f => Assert.Equal(FindingKinds.AttachmentType, f.Kind));
        Assert.Equal(["pdf", "png", "text", "docx", "doc"], findings.Select(f => f.Reason.Split(':')[0]));
    }

    [Fact]
    public async Task Finds_macro_enabled_office_documents_by_content()
    {
        var findings = await ScanAsync(
            ("contract.doc", TestFiles.WordDocumentWithMacros()),
            ("budget.xls", TestFiles.ExcelWorkbookWithMacros()),
            ("offer.docx", TestFiles.WordPackage(vbaProject: true)),
            ("named.docm", TestFiles.WordPackage(vbaProject: false)));

        var macros = findings.Where(f => f.Kind == FindingKinds.MacroDocument).ToList();
        Assert.Equal(["contract.doc", "budget.xls", "offer.docx", "named.docm"], macros.Select(f => f.Subject));
        Assert.Contains("word/vbaProject.bin", macros[2].Reason);
        Assert.Contains("macro-enabled (.docm)", macros[3].Reason);
    }

    [Fact]
    public async Task Reports_password_protected_office_documents()
    {
        var findings = await ScanAsync(("salary.xlsx", TestFiles.PasswordProtectedOffice()));

        Assert.Equal("salary.xlsx", Single(findings, FindingKinds.EncryptedDocument).Subject);
    }

    [Fact]
    public async Task Finds_programs_inside_archives_and_names_the_attachment()
    {
        var findings = await ScanAsync(("documents.zip", TestFiles.Zip(("docs/readme.txt", TestFiles.Text("hello")), ("docs/invoice.pdf", TestFiles.Pe()))));

        var executable = Single(findings, FindingKinds.Executable);
        Assert.Equal("documents.zip", executable.Subject);
        Assert.Contains("documents.zip > docs/invoice.pdf", executable.Reason);
        Assert.DoesNotContain(findings, f => f.Kind == FindingKinds.NestedArchive);
    }

    [Fact]
    public async Task Finds_programs_and_macros_in_7z_and_tar_gz()
    {
        var findings = await ScanAsync(
            ("pack.7z", TestFiles.SevenZip(("a.txt", TestFiles.Text("x")), ("b.scr", TestFiles.Pe()))),
            ("backup.tar.gz", TestFiles.TarGz(("x/report.doc", TestFiles.WordDocumentWithMacros()), ("x/tool", TestFiles.Elf()))));

        Assert.Contains(findings, f => f.Kind == FindingKinds.Executable && f.Subject == "pack.7z" && f.Reason.Contains("b.scr"));
        Assert.Contains(findings, f => f.Kind == FindingKinds.MacroDocument && f.Subject == "backup.tar.gz");
        Assert.Contains(findings, f => f.Kind == FindingKinds.Executable && f.Subject == "backup.tar.gz" && f.Reason.Contains("x/tool"));
        // A tar in gzip is one archive, not one inside another.
        Assert.DoesNotContain(findings, f => f.Kind == FindingKinds.NestedArchive);
    }

    [Fact]
    public async Task Reports_encrypted_archives_and_programs_named_inside_them()
    {
        var findings = await ScanAsync(("secure.zip", TestFiles.EncryptedZip("statement.exe", TestFiles.Pe())));

        Assert.Equal("secure.zip", Single(findings, FindingKinds.EncryptedArchive).Subject);
        Assert.Contains("statement.exe", Single(findings, FindingKinds.Executable).Reason);
    }

    [Fact]
    public async Task Reports_archives_inside_archives_and_looks_inside_them()
    {
        var findings = await ScanAsync(("outer.zip", TestFiles.Zip(("inner.zip", TestFiles.Zip(("run.js", TestFiles.Text("WScript.Echo(1)")))))));

        var nested = Single(findings, FindingKinds.NestedArchive);
        Assert.Equal("outer.zip", nested.Subject);
        Assert.Contains("outer.zip > inner.zip", nested.Reason);
        Assert.Contains("outer.zip > inner.zip > run.js", Single(findings, FindingKinds.Script).Reason);
    }

    [Fact]
    public async Task Finds_an_archive_renamed_as_something_else()
    {
        var findings = await ScanAsync(("scan.jpg", TestFiles.Zip(("scan.exe", TestFiles.Pe()))));

        Assert.Equal(["zip", "pe"], findings.Where(f => f.Kind == FindingKinds.AttachmentType).Select(f => f.FileType));
        Assert.StartsWith("zip:", findings.First(f => f.Kind == FindingKinds.AttachmentType).Reason);
        Assert.Contains("scan.jpg > scan.exe", Single(findings, FindingKinds.Executable).Reason);
    }

    [Fact]
    public async Task Gives_the_true_type_of_every_attachment_and_of_each_type_found_inside_archives()
    {
        var findings = await ScanAsync(
            ("report.pdf", TestFiles.Pdf()),
            ("bundle.zip", TestFiles.Zip(("a.txt", TestFiles.Text("a")), ("b.txt", TestFiles.Text("b")), ("run.js", TestFiles.Text("var x = 1;")),
                ("inner.tar.gz", TestFiles.TarGz(("x/logo.png", TestFiles.Png()))))));

        var types = findings.Where(f => f.Kind == FindingKinds.AttachmentType).ToList();
        Assert.Equal([("report.pdf", "pdf"), ("bundle.zip", "zip"), ("bundle.zip", "text"), ("bundle.zip", "script-js"), ("bundle.zip", "gzip"),
            ("bundle.zip", "tar"), ("bundle.zip", "png")], types.Select(f => (f.Subject!, f.FileType!)));
        Assert.All(types, f => Assert.StartsWith(f.FileType + ": ", f.Reason));
        Assert.Contains("bundle.zip > run.js", types.Single(f => f.FileType == "script-js").Reason);
    }

    [Fact]
    public async Task Stops_at_the_decompression_limit_of_a_zip_bomb()
    {
        var options = new AttachmentScanOptions { MaxUncompressedBytes = 1024 * 1024 };
        var zeros = new byte[8 * 1024 * 1024];
        var bomb = TestFiles.Zip(("a.zip", TestFiles.Zip(CompressionLevel.SmallestSize, ("zeros.bin", zeros)))); // a zip inside, so it is decompressed in full

        var findings = await ScanAsync(options, ("bomb.zip", bomb));

        Assert.Contains("possible zip bomb", Single(findings, FindingKinds.UninspectableAttachment).Reason);
    }

    [Fact]
    public async Task Stops_decompressing_at_the_byte_budget()
    {
        var options = new AttachmentScanOptions { MaxUncompressedBytes = 1024 * 1024 };
        var noise = new byte[3 * 1024 * 1024];
        new Random(7).NextBytes(noise);
        var inner = TestFiles.Zip(CompressionLevel.NoCompression, ("noise.bin", noise), ("late.exe", TestFiles.Pe()));

        var findings = await ScanAsync(options, ("big.zip", TestFiles.Zip(("inner.zip", inner))));

        Assert.Contains(findings, f => f.Kind == FindingKinds.UninspectableAttachment && f.Reason.Contains("once decompressed"));
    }

    [Fact]
    public async Task Stops_at_the_entry_limit()
    {
        var options = new AttachmentScanOptions { MaxArchiveEntries = 50 };
        var many = Enumerable.Range(0, 200).Select(i => ($"f{i}.txt", TestFiles.Text("x"))).ToArray();

        var findings = await ScanAsync(options, ("many.zip", TestFiles.Zip(many)));

        Assert.Contains("more than 50 archive entries", Single(findings, FindingKinds.UninspectableAttachment).Reason);
    }

    [Fact]
    public async Task Stops_at_the_depth_limit()
    {
        var options = new AttachmentScanOptions { MaxArchiveDepth = 3 };

        var findings = await ScanAsync(options, ("deep.zip", TestFiles.NestedZips(6, TestFiles.Pe())));

        Assert.Contains("nested more than 3 deep", Single(findings, FindingKinds.UninspectableAttachment).Reason);
        Assert.DoesNotContain(findings, f => f.Kind == FindingKinds.Executable); // too deep to reach
    }

    [Fact]
    public async Task Reports_an_unreadable_archive_instead_of_failing()
    {
        var broken = TestFiles.Zip(("a.exe", TestFiles.Pe()))[..40];

        var findings = await ScanAsync(("broken.zip", broken));

        Assert.Equal("broken.zip", Single(findings, FindingKinds.UninspectableAttachment).Subject);
    }

    [Fact]
    public async Task Looks_into_gzip_and_attached_messages()
    {
        var forwarded = ScanContexts.Message(attachments: ("inner.exe", TestFiles.Pe()));
        var message = ScanContexts.Message(attachments: ("tool.gz", TestFiles.GZip(TestFiles.Pe())));
        var mixed = Assert.IsType<MimeKit.Multipart>(message.Body);
        mixed.Add(new MimeKit.MessagePart { Message = forwarded, ContentDisposition = new MimeKit.ContentDisposition("attachment") { FileName = "fwd.eml" } });

        var findings = await new AttachmentTypeEngine().ScanAsync(ScanContexts.For(message), CancellationToken.None);

        Assert.Contains(findings, f => f.Kind == FindingKinds.Executable && f.Subject == "tool.gz" && f.Reason.Contains("tool.gz > tool"));
        Assert.Contains(findings, f => f.Kind == FindingKinds.Executable && f.Subject == "inner.exe");
    }

    [Fact]
    public async Task Ignores_the_message_body()
    {
        var message = ScanContexts.Message(text: "@echo off is how batch files start; Invoke-Expression is PowerShell.", html: "<p>Hi</p>");

        var findings = await new AttachmentTypeEngine().ScanAsync(ScanContexts.For(message), CancellationToken.None);

        Assert.Empty(findings);
    }
}
