using System.Buffers.Binary;
using System.Text;

namespace Postern.Core.Scanning.Engines;

/// <summary>
/// Reads the directory of an OLE2 compound file ([MS-CFB]), the container of .doc/.xls/.ppt, MSI and
/// password-protected OOXML. Only names, types and the root CLSID are read — enough to see a VBA
/// project, an encrypted package or an installer — and every offset and chain is bounds-checked,
/// because the file comes from a stranger.
/// </summary>
public sealed class CompoundFile
{
    private const uint EndOfChain = 0xFFFFFFFE;
    private const uint MaxRegularSector = 0xFFFFFFFA;
    private static readonly byte[] Signature = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

    /// <summary>The CLSID Windows Installer stores on the root storage of .msi packages.</summary>
    public static readonly Guid MsiClsid = new("000C1084-0000-0000-C000-000000000046");

    /// <summary>One directory entry: a storage (folder) or stream (file) name.</summary>
    public sealed record Entry(string Name, CompoundEntryType Type, Guid Clsid, long Size);

    private CompoundFile(IReadOnlyList<Entry> entries) => Entries = entries;

    /// <summary>Directory entries in directory order; the first is the root storage.</summary>
    public IReadOnlyList<Entry> Entries { get; }

    public Guid RootClsid => Entries.Count > 0 ? Entries[0].Clsid : Guid.Empty;

    public bool Contains(string name) => Entries.Any(e => e.Name.Equals(name, StringComparison.OrdinalIgnoreCase));

    /// <summary>Parses the directory, or returns null when <paramref name="data"/> is not a readable compound file.</summary>
    public static CompoundFile? TryRead(ReadOnlySpan<byte> data)
    {
        if (data.Length < 512 || !data.StartsWith(Signature))
            return null;
        var shift = BinaryPrimitives.ReadUInt16LittleEndian(data[0x1E..]);
        if (shift is not (9 or 12))
            return null;
        var sectorSize = 1 << shift;
        var sectorCount = (data.Length - sectorSize) / sectorSize + 1;
        var firstDirectory = BinaryPrimitives.ReadUInt32LittleEndian(data[0x30..]);
        var firstDifat = BinaryPrimitives.ReadUInt32LittleEndian(data[0x44..]);
        var difatCount = BinaryPrimitives.ReadUInt32LittleEndian(data[0x48..]);

        // FAT sector numbers: 109 in the header, then a chain of DIFAT sectors.
        var fatSectors = new List<uint>();
        for (var i = 0; i < 109; i++)
        {
            var s = BinaryPrimitives.ReadUInt32LittleEndian(data[(0x4C + i * 4)..]);
            if (s <= MaxRegularSector)
                fatSectors.Add(s);
        }
        var difat = firstDifat;
        for (var n = 0; n < difatCount && difat <= MaxRegularSector && n < sectorCount; n++)
        {
            var sector = SectorSpan(data, difat, sectorSize);
            if (sector.IsEmpty)
                return null;
            var perSector = sectorSize / 4 - 1;
            for (var i = 0; i < perSector; i++)
            {
                var s = BinaryPrimitives.ReadUInt32LittleEndian(sector[(i * 4)..]);
                if (s <= MaxRegularSector)
                    fatSectors.Add(s);
            }
            difat = BinaryPrimitives.ReadUInt32LittleEndian(sector[(perSector * 4)..]);
        }

        var fat = new List<uint>(fatSectors.Count * sectorSize / 4);
        foreach (var s in fatSectors)
        {
            var sector = SectorSpan(data, s, sectorSize);
            if (sector.IsEmpty)
                return null;
            for (var i = 0; i < sectorSize; i += 4)
                fat.Add(BinaryPrimitives.ReadUInt32LittleEndian(sector[i..]));
        }

        var entries = new List<Entry>();
        var current = firstDirectory;
        for (var visited = 0; current <= MaxRegularSector; visited++)
        {
            // A chain longer than the file has sectors loops: keep what was read rather than spin.
            if (visited > sectorCount)
                break;
            var sector = SectorSpan(data, current, sectorSize);
            if (sector.IsEmpty)
                return entries.Count > 0 ? new CompoundFile(entries) : null;
            for (var offset = 0; offset + 128 <= sectorSize; offset += 128)
            {
                var entry = sector.Slice(offset, 128);
                var type = entry[0x42];
                if (type is 0 or > 5)
                    continue;
                var nameBytes = Math.Clamp((int)BinaryPrimitives.ReadUInt16LittleEndian(entry[0x40..]), 2, 64) - 2;
                var name = Encoding.Unicode.GetString(entry[..(nameBytes & ~1)]);
                var clsid = new Guid(entry.Slice(0x50, 16));
                var size = (long)BinaryPrimitives.ReadUInt64LittleEndian(entry[0x78..]);
                entries.Add(new Entry(name, (CompoundEntryType)type, clsid, shift == 9 ? size & 0xFFFFFFFF : size));
            }
            current = current < fat.Count ? fat[(int)current] : EndOfChain;
        }
        return entries.Count > 0 ? new CompoundFile(entries) : null;
    }

    private static ReadOnlySpan<byte> SectorSpan(ReadOnlySpan<byte> data, uint sector, int sectorSize)
    {
        var offset = ((long)sector + 1) * sectorSize;
        return offset + sectorSize <= data.Length ? data.Slice((int)offset, sectorSize) : default;
    }
}

public enum CompoundEntryType : byte
{
    Storage = 1,
    Stream = 2,
    Root = 5,
}
