using System.Buffers;
using System.Text;
using Postern.Smtp.Internal;

namespace Postern.Smtp.Tests;

/// <summary>The end-of-data scanner, fed in every possible split so segment boundaries can't hide a bug.</summary>
public sealed class DataScannerTests
{
    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, Segment? previous)
        {
            Memory = memory;
            if (previous is not null)
            {
                RunningIndex = previous.RunningIndex + previous.Memory.Length;
                previous.Next = this;
            }
        }
    }

    private static ReadOnlySequence<byte> Sequence(params byte[][] parts)
    {
        if (parts.Length == 1)
        {
            return new ReadOnlySequence<byte>(parts[0]);
        }
        var first = new Segment(parts[0], null);
        var last = first;
        for (var i = 1; i < parts.Length; i++)
        {
            last = new Segment(parts[i], last);
        }
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary>Feeds the wire bytes in the given pieces, the way the session does: unconsumed tail + new read.</summary>
    private static (string Content, string Remainder, bool Ended, DataScanner Scanner) Run(byte[][] reads)
    {
        var scanner = new DataScanner();
        var content = new List<byte>();
        byte[] pending = [];
        for (var r = 0; r < reads.Length; r++)
        {
            var buffer = pending.Length == 0 ? Sequence(reads[r]) : Sequence(pending, reads[r]);
            while (true)
            {
                var result = scanner.Scan(buffer, out var contentEnd, out var next);
                content.AddRange(buffer.Slice(buffer.Start, contentEnd).ToArray());
                buffer = buffer.Slice(next);
                if (result == DataScanResult.EndOfData)
                {
                    var rest = buffer.ToArray().Concat(reads.Skip(r + 1).SelectMany(x => x)).ToArray();
                    return (Encoding.Latin1.GetString(content.ToArray()), Encoding.Latin1.GetString(rest), true, scanner);
                }
                if (result == DataScanResult.NeedMoreData)
                {
                    Assert.True(buffer.Length <= 3, "the unresolved tail is at most '\\r\\n.' sized");
                    pending = buffer.ToArray();
                    break;
                }
            }
        }
        return (Encoding.Latin1.GetString(content.ToArray()), "", false, scanner);
    }

    public static TheoryData<string, string, string> Cases => new()
    {
        // wire, content, what follows the end
        { ".\r\n", "", "" },
        { "a\r\n.\r\nNOOP\r\n", "a\r\n", "NOOP\r\n" },
        { "..a\r\n.\r\n", ".a\r\n", "" },
        { "a\r\n..\r\n.\r\n", "a\r\n.\r\n", "" },
        { "a\r\n.b\r\n.\r\n", "a\r\nb\r\n", "" },
        { "a\n.\nb\r\n.\r\n", "a\n.\nb\r\n", "" },
        { "a\r.\rb\r\n.\r\n", "a\r.\rb\r\n", "" },
        { "a\n.\r\nb\r\n.\r\n", "a\n.\r\nb\r\n", "" },
        { "a\r\n.\nb\r\n.\r\n", "a\r\n\nb\r\n", "" },
        { "a\r\n.\rb\r\n.\r\n", "a\r\n\rb\r\n", "" },
        { "\r\n.\r\n", "\r\n", "" },
        { "a\r\r\n.\r\n", "a\r\r\n", "" },
        { "a\r\n\r\n.\r\n.\r\n", "a\r\n\r\n", ".\r\n" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Finds_the_end_and_unstuffs_in_one_read(string wire, string content, string rest)
    {
        var result = Run([Encoding.Latin1.GetBytes(wire)]);

        Assert.True(result.Ended);
        Assert.Equal(content, result.Content);
        Assert.Equal(rest, result.Remainder);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Gives_the_same_result_however_the_input_is_split(string wire, string content, string rest)
    {
        var bytes = Encoding.Latin1.GetBytes(wire);
        for (var i = 1; i < bytes.Length; i++)
        {
            for (var j = i; j < bytes.Length; j++)
            {
                var reads = new[] { bytes[..i], bytes[i..j], bytes[j..] }.Where(p => p.Length > 0).ToArray();
                var result = Run(reads);
                Assert.True(result.Ended, $"split {i},{j}");
                Assert.Equal(content, result.Content);
                Assert.Equal(rest, result.Remainder);
            }
        }
    }

    [Fact]
    public void Byte_by_byte_input_gives_the_same_content()
    {
        var wire = Encoding.Latin1.GetBytes("From: x\r\n..dots\r\n\n.\n\r.\r\nlast\r\n.\r\n");
        var result = Run(wire.Select(b => new[] { b }).ToArray());

        Assert.True(result.Ended);
        Assert.Equal("From: x\r\n.dots\r\n\n.\n\r.\r\nlast\r\n", result.Content);
    }

    /// <summary>RFC 5321 §4.5.2 read literally: a line starts at the beginning and after each CRLF only.</summary>
    private static (string Content, string Remainder, bool Ended) Reference(string wire)
    {
        var content = new StringBuilder();
        var lineStart = true;
        for (var i = 0; i < wire.Length; i++)
        {
            if (lineStart && wire[i] == '.')
            {
                if (wire.AsSpan(i).StartsWith(".\r\n"))
                    return (content.ToString(), wire[(i + 3)..], true);
                lineStart = false;
                continue; // a transparency dot
            }
            content.Append(wire[i]);
            lineStart = wire[i] == '\n' && i > 0 && wire[i - 1] == '\r' && content.Length >= 2 && content[^2] == '\r';
        }
        return (content.ToString(), "", false);
    }

    [Fact]
    public void Agrees_with_the_rfc_on_random_input_however_it_is_split()
    {
        var random = new Random(5321);
        for (var n = 0; n < 20_000; n++)
        {
            var wire = new string(Enumerable.Range(0, random.Next(1, 16)).Select(_ => "a.\r\n"[random.Next(4)]).ToArray()) + "\r\n.\r\n";
            var expected = Reference(wire);
            var bytes = Encoding.Latin1.GetBytes(wire);
            var i = random.Next(1, bytes.Length);
            var j = random.Next(i, bytes.Length);
            var result = Run(new[] { bytes[..i], bytes[i..j], bytes[j..] }.Where(p => p.Length > 0).ToArray());
            Assert.True(expected == (result.Content, result.Remainder, result.Ended),
                $"{Escape(wire)} split {i},{j}: expected {Escape(expected.Content)} | {Escape(expected.Remainder)}, got {Escape(result.Content)} | {Escape(result.Remainder)}");
        }
    }

    private static string Escape(string s) => s.Replace("\r", "\\r").Replace("\n", "\\n");

    [Fact]
    public void Does_not_end_without_the_terminator()
    {
        var result = Run([Encoding.Latin1.GetBytes("a\r\n.\n"), Encoding.Latin1.GetBytes("b\r\n.")]);

        Assert.False(result.Ended);
        Assert.Equal("a\r\n\nb\r\n", result.Content);
    }
}
