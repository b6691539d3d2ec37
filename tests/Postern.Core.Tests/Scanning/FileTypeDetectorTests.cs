using System.Text;
using Postern.Core.Scanning.Engines;

namespace Postern.Core.Tests.Scanning;

public sealed class FileTypeDetectorTests
{
    private static string IdOf(byte[] data, string? name = null) => FileTypeDetector.Detect(data, name).Id;

    [Fact]
    public void Tells_types_by_content_not_by_name()
    {
        Assert.Equal("pe", IdOf(TestFiles.Pe(), "holiday.jpg"));
        Assert.Equal("mz", IdOf([(byte)'M', (byte)'Z', 0x90, 0], "x.txt"));
        Assert.Equal("elf", IdOf(TestFiles.Elf(), "x.pdf"));
        Assert.Equal("zip", IdOf(TestFiles.Zip(("a", [1])), "x.pdf"));
        Assert.Equal("7z", IdOf(TestFiles.SevenZip(("a", [1])), "x.doc"));
        Assert.Equal("gzip", IdOf(TestFiles.GZip([1, 2, 3]), null));
        Assert.Equal("ole2", IdOf(TestFiles.WordDocument(), "x.zip"));
        Assert.Equal("pdf", IdOf(TestFiles.Pdf(), "x.exe"));
        Assert.Equal("png", IdOf(TestFiles.Png(), "x.exe"));
        Assert.Equal("empty", IdOf([], "x.exe"));
    }

    [Fact]
    public void Tells_java_classes_from_fat_mach_o_binaries()
    {
        Assert.Equal("java-class", IdOf([0xCA, 0xFE, 0xBA, 0xBE, 0x00, 0x00, 0x00, 0x41]));
        Assert.Equal("macho", IdOf([0xCA, 0xFE, 0xBA, 0xBE, 0x00, 0x00, 0x00, 0x02]));
    }

    [Fact]
    public void Finds_tar_with_and_without_the_ustar_magic()
    {
        var header = new byte[1024];
        Encoding.ASCII.GetBytes("file.txt").CopyTo(header, 0);
        Encoding.ASCII.GetBytes("0000644\0").CopyTo(header, 100);
        Encoding.ASCII.GetBytes("00000000005\0").CopyTo(header, 124);
        var sum = header.Take(512).Select((b, i) => i is >= 148 and < 156 ? 32 : (int)b).Sum();
        Encoding.ASCII.GetBytes(Convert.ToString(sum, 8).PadLeft(6, '0') + "\0 ").CopyTo(header, 148);
        Assert.Equal("tar", IdOf(header));

        header[150] ^= 1; // a broken checksum is not tar
        Assert.NotEqual("tar", IdOf(header));
    }

    [Fact]
    public void Finds_disk_images_and_cabinets_it_cannot_open()
    {
        var iso = new byte[0x9000];
        Encoding.ASCII.GetBytes("CD001").CopyTo(iso, 0x8001);
        Assert.Equal("iso", IdOf(iso, "invoice.pdf"));
        Assert.Equal("cab", IdOf([.. "MSCF\0\0\0\0"u8.ToArray(), .. new byte[32]]));
    }

    [Theory]
    [InlineData("plain.txt", "Dear Bob, the figures are attached.", "text")]
    [InlineData("page.html", "<html><body><script>var a = 1;</script></body></html>", "html")]
    [InlineData("page.html", "<html><body><script>var b = new Blob([atob('TVqQ')]);</script></body></html>", "script-html")]
    [InlineData("logo.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"><script>location='https://x.test'</script></svg>", "script-svg")]
    [InlineData("logo.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"><circle r=\"4\"/></svg>", "svg")]
    [InlineData("a.ps1", "Write-Host hi", "script-powershell")]
    [InlineData("a.txt", "#!/bin/sh\nrm -rf ~\n", "script-shell")]
    [InlineData("a.vbe", "#@~^AAAAAA==", "script-encoded")]
    public void Judges_text_by_content_and_by_name(string name, string content, string expected)
    {
        Assert.Equal(expected, IdOf(Encoding.UTF8.GetBytes(content), name));
    }

    [Fact]
    public void Reads_utf16_scripts()
    {
        var text = Encoding.Unicode.GetBytes("\uFEFFSet o = CreateObject(\"WScript.Shell\")");
        Assert.Equal("script-wsh", IdOf(text, "a.txt"));
    }

    [Theory]
    [InlineData("invoice.PDF", "pdf")]
    [InlineData("archive.tar.gz", "gz")]
    [InlineData("evil.exe. ", "exe")]
    [InlineData("noext", null)]
    [InlineData("dir/a.Js", "js")]
    public void Takes_the_extension_as_windows_does(string name, string? expected)
    {
        Assert.Equal(expected, FileTypeDetector.ExtensionOf(name));
    }

    [Fact]
    public void Reads_the_directory_of_compound_files_and_survives_garbage()
    {
        var file = CompoundFile.TryRead(TestFiles.WordDocumentWithMacros());
        Assert.NotNull(file);
        Assert.Contains("_VBA_PROJECT", file.Entries.Select(e => e.Name));
        Assert.True(file.Contains("macros"));

        var broken = TestFiles.WordDocumentWithMacros();
        broken.AsSpan(0x30, 4).Fill(0x7F); // directory sector far past the end
        Assert.Null(CompoundFile.TryRead(broken));
        var loop = TestFiles.WordDocumentWithMacros();
        BitConverter.GetBytes(1u).CopyTo(loop, 512 + 4 * 2); // directory chain points back at itself
        Assert.NotNull(CompoundFile.TryRead(loop));
        Assert.Null(CompoundFile.TryRead(new byte[100]));
    }
}
