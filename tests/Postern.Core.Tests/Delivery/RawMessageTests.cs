using System.Security.Cryptography;
using System.Text;
using MimeKit;
using Postern.Core.Authentication;
using Postern.Core.Delivery;
using Postern.Core.Spool;

namespace Postern.Core.Tests.Delivery;

/// <summary>
/// The outgoing path keeps a message's bytes: <see cref="RawMessage"/> splits a header section without losing a
/// byte, the relaxed canonicalization hashes what RFC 6376 says, and what MailKit is handed writes out exactly
/// the stored bytes with Postern's fields on top.
/// </summary>
public sealed class RawMessageTests
{
    /// <summary>Header sections a relay meets: odd spacing, folding, a line without a colon, LF line ends, no body.</summary>
    private static readonly string[] Samples =
    [
        "Received: from a\r\n\tby b; date\r\nSubject : spaced\r\nX-Folded: one\r\n  two\r\n\r\nbody line\r\n\r\n\r\n",
        "Received: x\r\nFrom: a@b.test\r\nnot a header line\r\nTo: c@d.test\r\n\r\n--b  \r\nodd boundary \r\n--b--  \r\n",
        "Received: x\nFrom: a@b.test\n\nlf body\n",
        "Received: x\r\nSubject: only header\r\n",
        "Received: x\r\nSubject: no final line end",
        "Received: x\r\n\r\n",
        "Received: x\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße \u00e9\r\nno final line end",
    ];

    public static TheoryData<string> Messages() => new(Samples);

    [Theory]
    [MemberData(nameof(Messages))]
    public void Keeps_every_byte_of_the_header_section_and_body(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var raw = RawMessage.Parse(bytes);
        Assert.Equal(bytes, raw.ToArray());
        Assert.Equal(bytes.Length, raw.Length);
    }

    [Fact]
    public void Finds_fields_by_name_and_adds_new_ones_where_asked()
    {
        var raw = RawMessage.Parse(Encoding.ASCII.GetBytes("Received: x\r\nSubject : spaced\r\nnot a header\r\nsubject: again\r\n\r\nbody\r\n"));
        Assert.Equal([" spaced", " again"], raw.Values("SUBJECT"));
        Assert.Null(raw.NameOf(2));
        raw.Insert(1, RawMessage.Field("X-Postern-Loop", "token"));
        Assert.StartsWith("Received: x\r\nX-Postern-Loop: token\r\nSubject : spaced\r\n", Encoding.ASCII.GetString(raw.ToArray()), StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => raw.Insert(0, Encoding.ASCII.GetBytes("No-Line-End: x")));
    }

    [Fact]
    public void Reads_the_header_section_from_a_file_and_leaves_the_body_there()
    {
        var path = Path.GetTempFileName();
        try
        {
            var body = string.Concat(Enumerable.Repeat("a line of the body\r\n", 20_000));
            File.WriteAllText(path, "Received: x\r\nSubject: big\r\n\r\n" + body);
            using var raw = RawMessage.Load(File.OpenRead(path));
            Assert.Equal(2, raw.Fields.Count);
            Assert.Equal(body.Length, raw.BodyLength);
            using var reader = new StreamReader(raw.OpenBody());
            Assert.Equal(body, reader.ReadToEnd());
            Assert.False(raw.HasEightBitData);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("A: X\r\n", "a:X\r\n")]
    [InlineData("B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n")]
    [InlineData("Subject:   many    spaces \t here  \r\n", "subject:many spaces here\r\n")]
    public void Canonicalizes_header_fields_as_rfc_6376_relaxed(string field, string expected) =>
        Assert.Equal(expected, Encoding.ASCII.GetString(RelaxedCanonicalization.Header(Encoding.ASCII.GetBytes(field))));

    [Theory]
    [InlineData(" C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n")] // RFC 6376 §3.4.6
    [InlineData("", "")]
    [InlineData("\r\n\r\n", "")]
    [InlineData("no line end", "no line end\r\n")]
    [InlineData("a\r\n \t \r\nb\r\n", "a\r\n\r\nb\r\n")]
    [InlineData("lf\nline ends\n\n", "lf\r\nline ends\r\n")]
    [InlineData("a lone\rCR\r\nand a last one\r", "a lone\rCR\r\nand a last one\r\r\n")]
    public void Hashes_bodies_as_rfc_6376_relaxed(string body, string canonical) =>
        Assert.Equal(SHA256.HashData(Encoding.ASCII.GetBytes(canonical)),
            RelaxedCanonicalization.BodyHash(new MemoryStream(Encoding.ASCII.GetBytes(body))));

    [Fact]
    public void Hashes_a_body_the_same_whatever_the_piece_sizes_it_arrives_in()
    {
        var body = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 5000).Select(i => $"line {i} \t with  spaces {new string(' ', i % 3)}\r\n")) + "\r\n\r\n");
        var whole = RelaxedCanonicalization.BodyHash(new MemoryStream(body));
        var trickled = RelaxedCanonicalization.BodyHash(new TrickleStream(body, 7));
        Assert.Equal(whole, trickled);
    }

    /// <summary>The spool holds CRLF line ends only (bare CR or LF is refused at receive time).</summary>
    public static TheoryData<string> SpooledMessages()
    {
        var data = new TheoryData<string>();
        foreach (var text in Samples.Where(t => !t.Replace("\r\n", "").Contains('\n')))
            data.Add(text);
        return data;
    }

    [Theory]
    [MemberData(nameof(SpooledMessages))]
    public void What_mailkit_is_handed_writes_the_stored_bytes_exactly(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var raw = RawMessage.Parse(bytes);
        raw.Insert(0, RawMessage.Field("ARC-Seal", "i=1; test"));
        var expected = raw.ToArray();
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        using var written = new MemoryStream();
        WireMimeMessage.Create(raw).WriteTo(options, written);

        // MimeKit always writes the empty line after the header section and ends the data with a line end.
        if (!raw.HasSeparator)
            expected = [.. expected, .. (expected[^1] == '\n' ? "\r\n"u8 : "\r\n\r\n"u8)];
        else if (expected[^1] != '\n')
            expected = [.. expected, .. "\r\n"u8];
        var output = written.ToArray();
        Assert.Equal(Encoding.UTF8.GetString(expected), Encoding.UTF8.GetString(output));
        Assert.Equal(output.Length, WireMimeMessage.LengthOf(raw));
    }

    /// <summary>Hands out at most a few bytes per read, as a slow network would.</summary>
    private sealed class TrickleStream(byte[] data, int piece) : MemoryStream(data)
    {
        public override int Read(Span<byte> buffer) => base.Read(buffer[..Math.Min(piece, buffer.Length)]);

        public override int Read(byte[] buffer, int offset, int count) => base.Read(buffer, offset, Math.Min(piece, count));
    }
}
