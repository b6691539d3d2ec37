using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using SharpCompress.Common;
using SharpCompress.Writers;
using SharpCompress.Writers.SevenZip;
using SharpCompress.Writers.Tar;

namespace Postern.Core.Tests.Scanning;

/// <summary>
/// Attachments built in code, so the repository carries no binaries: minimal executables, archives
/// (plain, encrypted, nested, bombs), OLE2 compound files and OOXML packages with and without VBA.
/// </summary>
internal static class TestFiles
{
    /// <summary>The EICAR test string, decoded from the shipped signature file (the code holds no EICAR literal).</summary>
    public static byte[] Eicar { get; } = Convert.FromHexString(File.ReadAllText(EicarSignaturePath).Trim().Split(':')[3]);

    public static string EicarSignaturePath => Path.Combine(AppContext.BaseDirectory, "Scanning", "data", "eicar.ndb");

    public static byte[] Text(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>A DOS stub and a PE header: what Windows checks before it runs a file.</summary>
    public static byte[] Pe()
    {
        var data = new byte[1024];
        "MZ"u8.CopyTo(data);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(0x3C), 0x80);
        "This program cannot be run in DOS mode."u8.CopyTo(data.AsSpan(0x4E));
        "PE\0\0"u8.CopyTo(data.AsSpan(0x80));
        BinaryPrimitives.WriteUInt16LittleEndian(data.AsSpan(0x84), 0x8664); // machine: x64
        return data;
    }

    public static byte[] Elf()
    {
        var data = new byte[256];
        new byte[] { 0x7F, (byte)'E', (byte)'L', (byte)'F', 2, 1, 1 }.CopyTo(data, 0);
        return data;
    }

    public static byte[] MachO()
    {
        var data = new byte[256];
        new byte[] { 0xCF, 0xFA, 0xED, 0xFE, 0x07, 0x00, 0x00, 0x01 }.CopyTo(data, 0);
        return data;
    }

    public static byte[] Lnk()
    {
        var data = new byte[128];
        new byte[] { 0x4C, 0, 0, 0, 0x01, 0x14, 0x02, 0x00, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46 }.CopyTo(data, 0);
        return data;
    }

    public static byte[] Png()
    {
        var data = new byte[64];
        new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }.CopyTo(data, 0);
        return data;
    }

    public static byte[] Pdf() => Text("%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n");

    public static byte[] Zip(params (string Name, byte[] Data)[] entries) => Zip(CompressionLevel.Optimal, entries);

    public static byte[] Zip(CompressionLevel level, params (string Name, byte[] Data)[] entries)
    {
        using var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, data) in entries)
            {
                var entry = zip.CreateEntry(name, level);
                using var stream = entry.Open();
                stream.Write(data);
            }
        }
        return buffer.ToArray();
    }

    public static byte[] SevenZip(params (string Name, byte[] Data)[] entries)
    {
        using var buffer = new MemoryStream();
        using (var writer = WriterFactory.OpenWriter(buffer, ArchiveType.SevenZip, new SevenZipWriterOptions(CompressionType.LZMA) { LeaveStreamOpen = true }))
        {
            foreach (var (name, data) in entries)
                writer.Write(name, new MemoryStream(data), DateTime.UtcNow);
        }
        return buffer.ToArray();
    }

    public static byte[] TarGz(params (string Name, byte[] Data)[] entries)
    {
        using var buffer = new MemoryStream();
        using (var writer = WriterFactory.OpenWriter(buffer, ArchiveType.Tar, new TarWriterOptions(CompressionType.GZip, true) { LeaveStreamOpen = true }))
        {
            foreach (var (name, data) in entries)
                writer.Write(name, new MemoryStream(data), DateTime.UtcNow);
        }
        return buffer.ToArray();
    }

    public static byte[] GZip(byte[] data)
    {
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true))
            gzip.Write(data);
        return buffer.ToArray();
    }

    /// <summary>A zip whose one entry is stored with traditional PKWARE (ZipCrypto) encryption, as "zip -e" makes it.</summary>
    public static byte[] EncryptedZip(string name, byte[] plain, string password = "infected")
    {
        var crc = Crc32(plain);
        var keys = new ZipCryptoKeys(password);
        var header = new byte[12];
        Random.Shared.NextBytes(header);
        header[11] = (byte)(crc >> 24); // the check byte a reader compares after decrypting the header
        var encrypted = keys.Encrypt([.. header, .. plain]);
        var nameBytes = Encoding.UTF8.GetBytes(name);

        using var buffer = new MemoryStream();
        var w = new BinaryWriter(buffer);
        w.Write(0x04034b50u); w.Write((ushort)20); w.Write((ushort)1); w.Write((ushort)0);
        w.Write((ushort)0); w.Write((ushort)0x21); w.Write(crc); w.Write((uint)encrypted.Length); w.Write((uint)plain.Length);
        w.Write((ushort)nameBytes.Length); w.Write((ushort)0); w.Write(nameBytes); w.Write(encrypted);
        var central = (uint)buffer.Position;
        w.Write(0x02014b50u); w.Write((ushort)20); w.Write((ushort)20); w.Write((ushort)1); w.Write((ushort)0);
        w.Write((ushort)0); w.Write((ushort)0x21); w.Write(crc); w.Write((uint)encrypted.Length); w.Write((uint)plain.Length);
        w.Write((ushort)nameBytes.Length); w.Write((ushort)0); w.Write((ushort)0); w.Write((ushort)0); w.Write((ushort)0);
        w.Write(0u); w.Write(0u); w.Write(nameBytes);
        var centralSize = (uint)buffer.Position - central;
        w.Write(0x06054b50u); w.Write((ushort)0); w.Write((ushort)0); w.Write((ushort)1); w.Write((ushort)1);
        w.Write(centralSize); w.Write(central); w.Write((ushort)0);
        w.Flush();
        return buffer.ToArray();
    }

    /// <summary>
    /// An OLE2 compound file (version 3, 512-byte sectors) with the given directory entries, all empty:
    /// the directory is what Office's file type and VBA detection reads.
    /// </summary>
    public static byte[] CompoundFile(Guid rootClsid, params (string Name, byte Type)[] entries)
    {
        var all = new List<(string Name, byte Type)> { ("Root Entry", 5) };
        all.AddRange(entries);
        var directorySectors = (all.Count + 3) / 4;
        var data = new byte[512 * (2 + directorySectors)];
        var span = data.AsSpan();
        new byte[] { 0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1 }.CopyTo(span);
        BinaryPrimitives.WriteUInt16LittleEndian(span[0x18..], 0x3E);
        BinaryPrimitives.WriteUInt16LittleEndian(span[0x1A..], 3);
        BinaryPrimitives.WriteUInt16LittleEndian(span[0x1C..], 0xFFFE);
        BinaryPrimitives.WriteUInt16LittleEndian(span[0x1E..], 9);
        BinaryPrimitives.WriteUInt16LittleEndian(span[0x20..], 6);
        BinaryPrimitives.WriteUInt32LittleEndian(span[0x2C..], 1); // one FAT sector
        BinaryPrimitives.WriteUInt32LittleEndian(span[0x30..], 1); // directory starts at sector 1
        BinaryPrimitives.WriteUInt32LittleEndian(span[0x38..], 4096);
        BinaryPrimitives.WriteUInt32LittleEndian(span[0x3C..], 0xFFFFFFFE);
        BinaryPrimitives.WriteUInt32LittleEndian(span[0x44..], 0xFFFFFFFE);
        for (var i = 0; i < 109; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(span[(0x4C + i * 4)..], i == 0 ? 0u : 0xFFFFFFFF);

        var fat = span.Slice(512, 512);
        fat.Fill(0xFF);
        BinaryPrimitives.WriteUInt32LittleEndian(fat, 0xFFFFFFFD); // sector 0 holds the FAT
        for (var s = 1; s <= directorySectors; s++)
            BinaryPrimitives.WriteUInt32LittleEndian(fat[(s * 4)..], s == directorySectors ? 0xFFFFFFFE : (uint)(s + 1));

        for (var i = 0; i < all.Count; i++)
        {
            var entry = span.Slice(1024 + i * 128, 128);
            var name = Encoding.Unicode.GetBytes(all[i].Name);
            name.CopyTo(entry);
            BinaryPrimitives.WriteUInt16LittleEndian(entry[0x40..], (ushort)(name.Length + 2));
            entry[0x42] = all[i].Type;
            entry[0x43] = 1; // black
            BinaryPrimitives.WriteUInt32LittleEndian(entry[0x44..], 0xFFFFFFFF);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[0x48..], i + 1 < all.Count && i > 0 ? (uint)(i + 1) : 0xFFFFFFFF);
            BinaryPrimitives.WriteUInt32LittleEndian(entry[0x4C..], i == 0 && all.Count > 1 ? 1u : 0xFFFFFFFF);
            if (i == 0)
                rootClsid.TryWriteBytes(entry.Slice(0x50, 16));
            BinaryPrimitives.WriteUInt32LittleEndian(entry[0x74..], 0xFFFFFFFE);
        }
        return data;
    }

    /// <summary>A Word 97-2003 document with a VBA project, as Word saves one with macros.</summary>
    public static byte[] WordDocumentWithMacros() => CompoundFile(Guid.Empty,
        ("WordDocument", 2), ("1Table", 2), ("Macros", 1), ("VBA", 1), ("_VBA_PROJECT", 2), ("dir", 2), ("PROJECT", 2));

    public static byte[] WordDocument() => CompoundFile(Guid.Empty, ("WordDocument", 2), ("1Table", 2), ("\u0005SummaryInformation", 2));

    public static byte[] ExcelWorkbookWithMacros() => CompoundFile(Guid.Empty, ("Workbook", 2), ("_VBA_PROJECT_CUR", 1), ("VBA", 1));

    public static byte[] Msi() => CompoundFile(new Guid("000C1084-0000-0000-C000-000000000046"), ("\u4840\u3f3f\u4577", 2));

    public static byte[] PasswordProtectedOffice() => CompoundFile(Guid.Empty, ("EncryptionInfo", 2), ("EncryptedPackage", 2));

    /// <summary>An OOXML Word package; with <paramref name="vbaProject"/> it is what Word writes as .docm.</summary>
    public static byte[] WordPackage(bool vbaProject)
    {
        var entries = new List<(string, byte[])>
        {
            ("[Content_Types].xml", Text("<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>")),
            ("_rels/.rels", Text("<?xml version=\"1.0\"?><Relationships/>")),
            ("word/document.xml", Text("<?xml version=\"1.0\"?><w:document/>")),
        };
        if (vbaProject)
            entries.Add(("word/vbaProject.bin", CompoundFile(Guid.Empty, ("VBA", 1), ("_VBA_PROJECT", 2), ("dir", 2), ("PROJECT", 2))));
        return Zip([.. entries]);
    }

    /// <summary>Archives inside archives, <paramref name="levels"/> deep, with a program at the bottom.</summary>
    public static byte[] NestedZips(int levels, byte[] payload, string payloadName = "payload.exe")
    {
        var current = Zip((payloadName, payload));
        for (var level = levels - 1; level > 0; level--)
            current = Zip(($"level{level}.zip", current));
        return current;
    }

    public static uint Crc32(ReadOnlySpan<byte> data)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in data)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++)
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }

    /// <summary>The traditional PKWARE stream cipher (APPNOTE 6.1): three CRC-driven keys.</summary>
    private sealed class ZipCryptoKeys
    {
        private uint key0 = 0x12345678, key1 = 0x23456789, key2 = 0x34567890;

        public ZipCryptoKeys(string password)
        {
            foreach (var c in Encoding.ASCII.GetBytes(password))
                Update(c);
        }

        public byte[] Encrypt(byte[] plain)
        {
            var output = new byte[plain.Length];
            for (var i = 0; i < plain.Length; i++)
            {
                var temp = (ushort)(key2 | 2);
                output[i] = (byte)(plain[i] ^ (byte)((temp * (temp ^ 1)) >> 8));
                Update(plain[i]);
            }
            return output;
        }

        private void Update(byte c)
        {
            key0 = CrcByte(key0, c);
            key1 = (key1 + (key0 & 0xFF)) * 134775813 + 1;
            key2 = CrcByte(key2, (byte)(key1 >> 24));
        }

        private static uint CrcByte(uint crc, byte b)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++)
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
            return crc;
        }
    }
}
