using System.Text;
using Postern.Smtp.Tests.Infrastructure;

namespace Postern.Smtp.Tests;

public sealed class LimitsTests
{
    [Fact]
    public async Task Accepts_a_512_octet_command_line_and_refuses_a_longer_one()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();
        var exact = "NOOP " + new string('x', 512 - 5 - 2); // 512 octets with CRLF

        Assert.Equal("250 2.0.0", (await client.CommandAsync(exact)).Status);
        Assert.Equal("500 5.5.2 Line too long", (await client.CommandAsync(exact + "x")).Lines[0]);
        Assert.Equal("500 5.5.2", (await client.CommandAsync("NOOP " + new string('y', 100_000))).Status);
        Assert.Equal("250 2.0.0", (await client.CommandAsync("NOOP")).Status);
    }

    [Fact]
    public async Task Long_line_split_across_reads_is_refused_once()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();

        await client.SendAsync("MAIL FROM:<" + new string('a', 600));
        await client.SendAsync(new string('b', 600));
        await client.SendAsync("@example.com>\r\nNOOP\r\n");

        Assert.Equal("500 5.5.2", (await client.ReadReplyAsync()).Status);
        Assert.Equal("250 2.0.0", (await client.ReadReplyAsync()).Status);
        Assert.Empty(server.Handler.Mails);
    }

    [Fact]
    public async Task Refuses_recipients_beyond_the_limit()
    {
        await using var server = await TestServer.StartAsync(new SmtpLimits { MaxRecipients = 1000 });
        var client = await server.ConnectEhloAsync();
        await client.CommandAsync("MAIL FROM:<s@example.com>");
        var batch = new StringBuilder();
        for (var i = 0; i < 1001; i++)
        {
            batch.Append("RCPT TO:<r").Append(i).Append("@example.org>\r\n");
        }

        await client.SendAsync(batch.ToString());
        var replies = await client.ReadRepliesAsync(1001);

        Assert.All(replies.Take(1000), r => Assert.Equal("250 2.1.5", r.Status));
        Assert.Equal("452 4.5.3 Too many recipients", replies[1000].Lines[0]);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        await client.SendAsync("x\r\n.\r\n");
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        Assert.Equal(1000, Assert.Single(server.Handler.Messages).Transaction.Recipients.Count);
    }

    [Fact]
    public async Task Closes_an_idle_session_with_421()
    {
        await using var server = await TestServer.StartAsync(new SmtpLimits { IdleTimeout = TimeSpan.FromMilliseconds(600) });
        var client = await server.ConnectEhloAsync();

        var reply = await client.ReadReplyAsync();

        Assert.Equal("421 4.4.2 Idle timeout", reply.Lines[0]);
        Assert.True(await client.WaitForCloseAsync());
    }

    [Fact]
    public async Task Idle_timeout_applies_inside_data()
    {
        await using var server = await TestServer.StartAsync(new SmtpLimits { IdleTimeout = TimeSpan.FromMilliseconds(600) });
        var client = await server.ConnectEhloAsync();
        await client.CommandAsync("MAIL FROM:<s@example.com>");
        await client.CommandAsync("RCPT TO:<r@example.org>");
        await client.CommandAsync("DATA");
        await client.SendAsync("partial");

        Assert.Equal("421 4.4.2", (await client.ReadReplyAsync()).Status);
        Assert.True(await client.WaitForCloseAsync());
        await Poll.UntilAsync(() => server.Handler.Messages.Single().Disposed, "writer disposed");
        Assert.False(server.Handler.Messages.Single().Completed);
    }

    [Fact]
    public async Task Closes_a_session_that_outlives_the_session_timeout()
    {
        await using var server = await TestServer.StartAsync(new SmtpLimits { SessionTimeout = TimeSpan.FromMilliseconds(1500), IdleTimeout = TimeSpan.FromSeconds(30), MaxCommandsWithoutProgress = 1_000_000 });
        var client = await server.ConnectEhloAsync();

        TestReply reply;
        var deadline = DateTime.UtcNow.AddSeconds(10);
        do
        {
            reply = await client.CommandAsync("NOOP");
        }
        while (reply.Code == 250 && DateTime.UtcNow < deadline);

        Assert.Equal("421 4.4.2", reply.Status);
        Assert.True(await client.WaitForCloseAsync());
    }

    [Fact]
    public async Task Refuses_connections_beyond_the_per_address_limit()
    {
        await using var server = await TestServer.StartAsync(new SmtpLimits { MaxConnectionsPerIp = 2 });
        var first = await server.ConnectAsync();
        var second = await server.ConnectAsync();

        var third = await server.ConnectAsync(readGreeting: false);
        var refusal = await third.ReadReplyAsync();

        Assert.Equal("421 4.7.0 Too many connections from your address", refusal.Lines[0]);
        Assert.True(await third.WaitForCloseAsync());
        Assert.Equal("250 2.0.0", (await first.CommandAsync("NOOP")).Status);

        // A slot frees up when a session ends.
        await first.CommandAsync("QUIT");
        Assert.True(await first.WaitForCloseAsync());
        await Poll.UntilAsync(() => server.Server.ActiveSessions == 1, "first session to end");
        var fourth = await server.ConnectAsync();
        Assert.Equal("250 2.0.0", (await fourth.CommandAsync("NOOP")).Status);
        _ = second;
    }

    [Fact]
    public async Task Refuses_connections_beyond_the_total_limit()
    {
        await using var server = await TestServer.StartAsync(new SmtpLimits { MaxConnections = 1 });
        await server.ConnectAsync();

        var second = await server.ConnectAsync(readGreeting: false);

        Assert.Equal("421 4.7.0", (await second.ReadReplyAsync()).Status);
        Assert.True(await second.WaitForCloseAsync());
    }

    [Fact]
    public async Task Closes_the_session_after_too_many_commands_without_progress()
    {
        await using var server = await TestServer.StartAsync(new SmtpLimits { MaxCommandsWithoutProgress = 5 });
        var client = await server.ConnectEhloAsync(); // 1

        for (var i = 0; i < 4; i++)
        {
            Assert.Equal("250 2.0.0", (await client.CommandAsync("NOOP")).Status); // 2..5
        }
        var reply = await client.CommandAsync("NOOP");

        Assert.Equal("421 4.7.0", reply.Status);
        Assert.True(await client.WaitForCloseAsync());
    }

    [Fact]
    public async Task Refused_recipients_count_as_commands_without_progress()
    {
        var handler = new RecordingHandler { OnRecipient = _ => new SmtpReply(550, "5.1.1", "No such user") };
        await using var server = await TestServer.StartAsync(new SmtpLimits { MaxCommandsWithoutProgress = 10 }, handler);
        var client = await server.ConnectEhloAsync(); // 1
        await client.CommandAsync("MAIL FROM:<s@example.com>"); // 2

        await client.SendAsync(string.Concat(Enumerable.Repeat("RCPT TO:<guess@example.org>\r\n", 9)));
        var replies = await client.ReadRepliesAsync(9);

        Assert.Equal(8, replies.Count(r => r.Status == "550 5.1.1"));
        Assert.Equal("421 4.7.0", replies[^1].Status);
        Assert.True(await client.WaitForCloseAsync());
    }

    [Fact]
    public async Task An_accepted_message_resets_the_command_counter()
    {
        await using var server = await TestServer.StartAsync(new SmtpLimits { MaxCommandsWithoutProgress = 4 });
        var client = await server.ConnectEhloAsync(); // 1

        for (var i = 0; i < 3; i++)
        {
            // MAIL counts; RCPT and DATA don't; the accepted message resets the counter.
            Assert.Equal("250 2.0.0", (await client.SendMessageAsync("s@example.com", ["r@example.org"], "x\r\n")).Status);
            Assert.Equal("250 2.0.0", (await client.CommandAsync("NOOP")).Status);
            Assert.Equal("250 2.0.0", (await client.CommandAsync("RSET")).Status);
        }
        Assert.Equal(3, server.Handler.Messages.Count);
    }

    [Fact]
    public async Task Closes_the_session_after_too_many_errors()
    {
        await using var server = await TestServer.StartAsync(new SmtpLimits { MaxErrors = 3 });
        var client = await server.ConnectEhloAsync();

        Assert.Equal("500 5.5.2", (await client.CommandAsync("BOGUS")).Status);
        Assert.Equal("500 5.5.2", (await client.CommandAsync("BOGUS")).Status);
        Assert.Equal("500 5.5.2", (await client.CommandAsync("BOGUS")).Status);
        Assert.Equal("421 4.7.0", (await client.ReadReplyAsync()).Status);

        Assert.True(await client.WaitForCloseAsync());
    }
}
