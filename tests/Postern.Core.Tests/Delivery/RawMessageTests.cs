using System.Text;
using MimeKit;
using Postern.Core.Delivery;
using Postern.Core.Spool;

namespace Postern.Core.Tests.Delivery;

/// <summary>
/// The outgoing path keeps a message's bytes: <see cref="RawMessage"/> splits a header section without losing a
/// byte, and what MailKit is handed writes out exactly the stored bytes with Postern's fields on top.
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
    public void Reads_a_header_section_larger_than_one_read_from_a_file()
    {
        var path = Path.GetTempFileName();
        try
        {
            var headers = string.Concat(Enumerable.Range(0, 3000).Select(i => $"X-Trace-{i}: hop {i} of a long way round\r\n"));
            var text = "Received: x\r\n" + headers + "\r\nthe body\r\n";
            File.WriteAllText(path, text);
            using var raw = RawMessage.Load(File.OpenRead(path));
            Assert.Equal(3001, raw.Fields.Count);
            Assert.Equal("the body\r\n".Length, raw.BodyLength);
            Assert.Equal(Encoding.ASCII.GetBytes(text), raw.ToArray());
        }
        finally
        {
            File.Delete(path);
        }
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
}

/// <summary>What is announced for BDAT is what MailKit writes, whatever line ends the stored header fields have.</summary>
public sealed class WireLengthTests
{
    public static TheoryData<string> Messages() => new(
    [
        "Received: x\nFrom: a@b.test\n\nlf body\n",
        "Received: x\r\nAuthentication-Results: postern.example;\n\tspf=pass\nX-Bare-Cr: a\rb\r\n\r\nbody\r\n",
        "Received: x\r\nSubject: lf at the end\n",
        "Received: x\r\nSubject: crlf\r\n\r\n..dots\r\n" + new string('a', 998) + "\r\nno final line end",
    ]);

    [Theory]
    [MemberData(nameof(Messages))]
    public void The_announced_length_is_what_mailkit_writes_once_header_line_ends_are_crlf(string text)
    {
        var raw = RawMessage.Parse(Encoding.UTF8.GetBytes(text));
        raw.UseCrlfLineEnds();
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        using var written = new MemoryStream();
        WireMimeMessage.Create(raw).WriteTo(options, written);

        Assert.Equal(written.Length, WireMimeMessage.LengthOf(raw));
        // Nothing but CRLF in the header section MimeKit wrote, so MimeKit had nothing to convert.
        var header = Encoding.Latin1.GetString(written.ToArray()).Split("\r\n\r\n")[0];
        Assert.DoesNotContain("\n", header.Replace("\r\n", ""), StringComparison.Ordinal);
        Assert.All(raw.Fields, f => Assert.DoesNotContain("\n", Encoding.Latin1.GetString(f).Replace("\r\n", ""), StringComparison.Ordinal));
    }
}
