using System.Text;
using Postern.Smtp.Tests.Infrastructure;

namespace Postern.Smtp.Tests;

public sealed class DataTests
{
    private static async Task<(TestServer Server, SmtpTestClient Client)> OpenDataAsync(SmtpLimits? limits = null)
    {
        var server = await TestServer.StartAsync(limits);
        var client = await server.ConnectEhloAsync();
        Assert.Equal(250, (await client.CommandAsync("MAIL FROM:<s@example.com>")).Code);
        Assert.Equal(250, (await client.CommandAsync("RCPT TO:<r@example.org>")).Code);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        return (server, client);
    }

    [Fact]
    public async Task Removes_dot_stuffing()
    {
        var (server, client) = await OpenDataAsync();
        await using var _ = server;

        await client.SendAsync("..leading\r\n...two\r\n.\tx\r\nmid.dle\r\n..\r\n.\r\n");

        Assert.Equal("250 2.0.0", (await client.ReadReplyAsync()).Status);
        Assert.Equal(".leading\r\n..two\r\n\tx\r\nmid.dle\r\n.\r\n", Assert.Single(server.Handler.Messages).Text);
    }

    [Fact]
    public async Task Accepts_an_empty_message()
    {
        var (server, client) = await OpenDataAsync();
        await using var _ = server;

        await client.SendAsync(".\r\n");

        Assert.Equal("250 2.0.0", (await client.ReadReplyAsync()).Status);
        Assert.Equal("", Assert.Single(server.Handler.Messages).Text);
    }

    [Theory]
    [InlineData("\n.\n")]
    [InlineData("\r.\r")]
    [InlineData("\n.\r\n")]
    [InlineData("\r\n.\n")]
    [InlineData("\r.\r\n")]
    [InlineData("\r\n.\r")]
    public async Task Smuggled_end_of_data_is_refused_and_nothing_after_it_runs(string smuggled)
    {
        var (server, client) = await OpenDataAsync();
        await using var _ = server;

        await client.SendAsync("Subject: x\r\n\r\nbody" + smuggled + "MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\n");
        await client.SendAsync("more\r\n.\r\nNOOP\r\n");

        Assert.Equal("550 5.6.0 Message refused: bare CR or LF line endings (only CRLF is allowed)", (await client.ReadReplyAsync()).Lines[0]);
        Assert.Equal("250 2.0.0", (await client.ReadReplyAsync()).Status);
        var message = Assert.Single(server.Handler.Messages);
        Assert.True(message.Disposed);
        Assert.False(message.Completed);
        Assert.Single(server.Handler.Mails);
    }

    [Fact]
    public async Task Accepts_a_1000_octet_text_line_and_refuses_a_longer_one()
    {
        var (server, client) = await OpenDataAsync();
        await using var _ = server;
        var ok = new string('a', 998) + "\r\n"; // 1000 octets with CRLF

        await client.SendAsync(ok + ".\r\n");
        Assert.Equal("250 2.0.0", (await client.ReadReplyAsync()).Status);

        await client.CommandAsync("MAIL FROM:<s@example.com>");
        await client.CommandAsync("RCPT TO:<r@example.org>");
        await client.CommandAsync("DATA");
        await client.SendAsync("short\r\n" + new string('b', 999) + "\r\nafter\r\n.\r\n");

        Assert.Equal("500 5.6.0", (await client.ReadReplyAsync()).Status);
        var messages = server.Handler.Messages.ToArray();
        Assert.Equal(ok, messages[0].Text);
        Assert.True(messages[1].Disposed);
        Assert.False(messages[1].Completed);
        // In step afterwards: a new transaction works.
        Assert.Equal("250 2.0.0", (await client.SendMessageAsync("s@example.com", ["r@example.org"], "fine\r\n")).Status);
    }

    [Fact]
    public async Task Refuses_mail_with_a_declared_size_over_the_limit()
    {
        await using var server = await TestServer.StartAsync(new SmtpLimits { MaxMessageSize = 1000 });
        var client = await server.ConnectEhloAsync();

        Assert.Equal("552 5.3.4 Message size exceeds fixed limit", (await client.CommandAsync("MAIL FROM:<s@example.com> SIZE=1001")).Lines[0]);
        Assert.Equal("552 5.3.4", (await client.CommandAsync("MAIL FROM:<s@example.com> SIZE=99999999999999999999999")).Status);
        Assert.Equal("250 2.1.0", (await client.CommandAsync("MAIL FROM:<s@example.com> SIZE=1000")).Status);
        Assert.Equal(1000, Assert.Single(server.Handler.Mails).DeclaredSize);
    }

    [Fact]
    public async Task Refuses_data_over_the_size_limit_after_reading_it_all()
    {
        var (server, client) = await OpenDataAsync(new SmtpLimits { MaxMessageSize = 1000 });
        await using var _ = server;
        var line = new string('x', 98) + "\r\n";

        await client.SendAsync(string.Concat(Enumerable.Repeat(line, 30)) + ".\r\nNOOP\r\n");

        Assert.Equal("552 5.3.4", (await client.ReadReplyAsync()).Status);
        Assert.Equal("250 2.0.0", (await client.ReadReplyAsync()).Status);
        var message = Assert.Single(server.Handler.Messages);
        Assert.True(message.Disposed);
        Assert.False(message.Completed);
    }

    [Fact]
    public async Task Accepts_data_exactly_at_the_size_limit()
    {
        var (server, client) = await OpenDataAsync(new SmtpLimits { MaxMessageSize = 1000 });
        await using var _ = server;
        var line = new string('x', 98) + "\r\n";

        await client.SendAsync(string.Concat(Enumerable.Repeat(line, 10)) + ".\r\n");

        Assert.Equal("250 2.0.0", (await client.ReadReplyAsync()).Status);
        Assert.Equal(1000, Assert.Single(server.Handler.Messages).Content.Length);
    }

    [Fact]
    public async Task Refuses_bdat_over_the_size_limit_and_discards_the_pipelined_rest()
    {
        await using var server = await TestServer.StartAsync(new SmtpLimits { MaxMessageSize = 1000 });
        var client = await server.ConnectEhloAsync();
        await client.CommandAsync("MAIL FROM:<s@example.com>");
        await client.CommandAsync("RCPT TO:<r@example.org>");

        var chunk = new string('y', 600);
        await client.SendAsync($"BDAT 600\r\n{chunk}BDAT 600\r\n{chunk}BDAT 600\r\n{chunk}BDAT 10 LAST\r\nNOOP\r\nNOOPNOOP\r\n");

        var replies = await client.ReadRepliesAsync(5);
        Assert.Equal(["250 2.0.0", "552 5.3.4", "552 5.3.4", "552 5.3.4", "250 2.0.0"], replies.Select(r => r.Status));
        var message = Assert.Single(server.Handler.Messages);
        Assert.True(message.Disposed);
        Assert.False(message.Completed);
        Assert.Equal("250 2.1.0", (await client.CommandAsync("MAIL FROM:<s@example.com>")).Status);
    }

    [Fact]
    public async Task Completion_reply_comes_from_the_handler_and_resets_the_transaction()
    {
        await using var server = await TestServer.StartAsync();
        server.Handler.OnComplete = _ => new SmtpReply(554, "5.7.1", "Spam");
        var client = await server.ConnectEhloAsync();

        var reply = await client.SendMessageAsync("s@example.com", ["r@example.org"], "spam\r\n");

        Assert.Equal("554 5.7.1 Spam", reply.Lines[0]);
        Assert.Equal("503 5.5.1", (await client.CommandAsync("DATA")).Status);
    }

    [Fact]
    public async Task Streams_large_messages_in_chunks()
    {
        var (server, client) = await OpenDataAsync();
        await using var _ = server;
        var content = new StringBuilder();
        var wire = new StringBuilder();
        for (var i = 0; i < 5000; i++)
        {
            var line = (i % 7 == 0 ? "." : "") + "line " + i + "\r\n";
            content.Append(line);
            wire.Append(line.StartsWith('.') ? "." + line : line);
        }

        await client.SendAsync(wire + ".\r\n");

        Assert.Equal("250 2.0.0", (await client.ReadReplyAsync()).Status);
        var message = Assert.Single(server.Handler.Messages);
        Assert.Equal(content.ToString(), message.Text);
        Assert.True(message.Writes > 1);
    }
}
