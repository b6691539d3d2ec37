using System.Text;
using Postern.Smtp.Tests.Infrastructure;

namespace Postern.Smtp.Tests;

/// <summary>DATA and BDAT carry the same content through the same checks: the same bytes get the same reply either way.</summary>
public sealed class ContentParityTests
{
    private static readonly SmtpLimits Limits = new() { MaxHeaderSectionSize = 4096 };

    private static async Task<SmtpTestClient> OpenTransactionAsync(TestServer server)
    {
        var client = await server.ConnectEhloAsync();
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<s@example.com>")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<r@example.org>")).Code);
        return client;
    }

    /// <summary>The content by DATA (dot-stuffed), then the reply and whether the handler was left with a completed message.</summary>
    private static async Task<(string Reply, ReceivedMessage Message)> SendByDataAsync(string content, RecordingHandler? handler = null)
    {
        await using var server = await TestServer.StartAsync(Limits, handler);
        var client = await OpenTransactionAsync(server);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        var stuffed = content.Replace("\r\n.", "\r\n..", StringComparison.Ordinal);
        await client.SendAsync(Encoding.Latin1.GetBytes((stuffed.StartsWith('.') ? "." : "") + stuffed + (content.EndsWith("\r\n", StringComparison.Ordinal) ? "" : "\r\n") + ".\r\nNOOP\r\n"));
        var reply = (await client.ReadReplyAsync()).Lines[0];
        Assert.Equal("250 2.0.0 Ok", (await client.ReadReplyAsync()).Lines[0]); // back in step
        return (reply, Assert.Single(server.Handler.Messages));
    }

    /// <summary>The same content by BDAT in chunks of <paramref name="chunk"/> octets, pipelined, the last one LAST.</summary>
    private static async Task<(string Reply, ReceivedMessage Message)> SendByBdatAsync(string content, int chunk, RecordingHandler? handler = null)
    {
        await using var server = await TestServer.StartAsync(Limits, handler);
        var client = await OpenTransactionAsync(server);
        var bytes = Encoding.Latin1.GetBytes(content + (content.EndsWith("\r\n", StringComparison.Ordinal) ? "" : "\r\n"));
        var wire = new MemoryStream();
        var chunks = bytes.Chunk(chunk).ToArray();
        for (var i = 0; i < chunks.Length; i++)
        {
            wire.Write(Encoding.ASCII.GetBytes($"BDAT {chunks[i].Length}{(i == chunks.Length - 1 ? " LAST" : "")}\r\n"));
            wire.Write(chunks[i]);
        }
        wire.Write("NOOP\r\n"u8);
        await client.SendAsync(wire.ToArray());
        var replies = await client.ReadRepliesAsync(chunks.Length + 1);
        Assert.Equal("250 2.0.0 Ok", replies[^1].Lines[0]); // back in step
        return (replies[^2].Lines[0], Assert.Single(server.Handler.Messages));
    }

    public static TheoryData<string, string> Contents => new()
    {
        { "Subject: ok\r\n\r\n.leading dot\r\n" + new string('.', 998) + "\r\n", "250 2.0.0 Queued as test" },
        { "Subject: bare lf\r\n\r\nline\nnext\r\n", "550 5.6.0 Message refused: bare CR or LF line endings (only CRLF is allowed)" },
        { "Subject: bare cr\r\n\r\nline\rnext\r\n", "550 5.6.0 Message refused: bare CR or LF line endings (only CRLF is allowed)" },
        { "Subject: bare lf in header\nX: y\r\n\r\nbody\r\n", "550 5.6.0 Message refused: bare CR or LF line endings (only CRLF is allowed)" },
        { "Subject: long\r\n\r\n" + new string('a', 999) + "\r\n", "500 5.6.0 Line too long" },
        { string.Concat(Enumerable.Repeat("X-Filler: " + new string('h', 60) + "\r\n", 80)) + "\r\nbody\r\n", "554 5.6.0 Header section too large" },
    };

    [Theory]
    [MemberData(nameof(Contents))]
    public async Task Data_and_bdat_give_the_same_reply_for_the_same_content(string content, string expected)
    {
        var (byData, dataMessage) = await SendByDataAsync(content);
        Assert.Equal(expected, byData);
        // A refusal of the server's own is told to the writer (so the relay can trace it), by DATA and BDAT alike.
        Assert.Equal(dataMessage.Completed ? null : expected, dataMessage.RefusedWith);
        // Down to 1-octet chunks, but at most 80 chunks: the pipelined rest after a refusal counts as commands without progress.
        foreach (var chunk in new[] { 1, 7, 4096, 100_000 }.Select(c => Math.Max(c, content.Length / 80 + 1)).Distinct())
        {
            var (byBdat, bdatMessage) = await SendByBdatAsync(content, chunk);
            Assert.Equal(expected, byBdat);
            Assert.Equal(dataMessage.Completed, bdatMessage.Completed);
            Assert.True(bdatMessage.Completed || bdatMessage.Disposed);
            Assert.Equal(dataMessage.RefusedWith, bdatMessage.RefusedWith);
            if (bdatMessage.Completed)
                Assert.Equal(dataMessage.Content, bdatMessage.Content);
        }
    }

    [Fact]
    public async Task A_refusal_at_the_end_of_the_header_section_stops_storing_and_is_the_final_reply()
    {
        var content = "X-Key: wrong\r\nSubject: s\r\n\r\n" + string.Concat(Enumerable.Repeat(new string('b', 70) + "\r\n", 2000));
        var headerLength = "X-Key: wrong\r\nSubject: s\r\n\r\n".Length;
        RecordingHandler Refusing() => new() { OnHeaderSectionComplete = _ => new SmtpReply(550, "5.7.1", "Relaying denied") };

        var (byData, dataMessage) = await SendByDataAsync(content, Refusing());
        var (byBdat, bdatMessage) = await SendByBdatAsync(content, 10_000, Refusing());

        foreach (var (reply, message) in new[] { (byData, dataMessage), (byBdat, bdatMessage) })
        {
            Assert.Equal("550 5.7.1 Relaying denied", reply);
            Assert.Null(message.RefusedWith); // the writer's own refusal is not told back to it
            Assert.True(message.Disposed);
            Assert.False(message.Completed);
            Assert.InRange(message.HeaderSectionSeenAt!.Value, headerLength, headerLength + 16_384); // the read holding the empty line, no more
            Assert.Equal(message.HeaderSectionSeenAt, message.Content.Length); // nothing written after the refusal
        }
    }

    [Fact]
    public async Task Reports_the_header_section_once_even_when_its_empty_line_is_split_between_chunks()
    {
        var (reply, message) = await SendByBdatAsync("Subject: s\r\n\r\nbody\r\n", 13);

        Assert.Equal("250 2.0.0 Queued as test", reply);
        Assert.Equal(20, message.HeaderSectionSeenAt); // "Subject: s\r\n\r" is chunk one; its LF opens chunk two, reported once that is written
    }
}
