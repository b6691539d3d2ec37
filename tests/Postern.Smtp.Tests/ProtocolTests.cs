using System.Text;
using Postern.Smtp.Tests.Infrastructure;

namespace Postern.Smtp.Tests;

public sealed class ProtocolTests
{
    [Fact]
    public async Task Greets_and_advertises_extensions_on_ehlo()
    {
        await using var server = await TestServer.StartAsync(new SmtpLimits { MaxMessageSize = 12345 });
        var client = await server.ConnectAsync();

        var ehlo = await client.CommandAsync("EHLO client.test");

        Assert.Equal(
            ["250-mx.test", "250-SIZE 12345", "250-8BITMIME", "250-PIPELINING", "250-SMTPUTF8", "250-ENHANCEDSTATUSCODES", "250-CHUNKING", "250 STARTTLS"],
            ehlo.Lines);
    }

    [Fact]
    public async Task Does_not_advertise_starttls_without_a_certificate()
    {
        await using var server = await TestServer.StartAsync(listeners: TestServer.Listener(withCertificate: false));
        var client = await server.ConnectAsync();

        var ehlo = await client.CommandAsync("EHLO client.test");

        Assert.DoesNotContain(ehlo.Lines, l => l.Contains("STARTTLS", StringComparison.Ordinal));
        Assert.Equal("502 5.5.1", (await client.CommandAsync("STARTTLS")).Status);
    }

    [Fact]
    public async Task Helo_gets_a_plain_reply_and_mail_parameters_need_ehlo()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectAsync();

        Assert.Equal(["250 mx.test"], (await client.CommandAsync("HELO client.test")).Lines);
        Assert.Equal("555 5.5.4", (await client.CommandAsync("MAIL FROM:<a@example.com> SIZE=10")).Status);
        Assert.Equal("250 2.1.0", (await client.CommandAsync("MAIL FROM:<a@example.com>")).Status);
    }

    [Fact]
    public async Task Delivers_a_message_sent_with_data()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();

        var reply = await client.SendMessageAsync("sender@example.com", ["a@example.org", "b@example.org"], "Subject: hi\r\n\r\nHello\r\n");

        Assert.Equal("250 2.0.0", reply.Status);
        var message = Assert.Single(server.Handler.Messages);
        Assert.True(message.Completed);
        Assert.False(message.Disposed);
        Assert.Equal("Subject: hi\r\n\r\nHello\r\n", message.Text);
        Assert.Equal("sender@example.com", message.Transaction.From.Address);
        Assert.Equal(["a@example.org", "b@example.org"], message.Transaction.Recipients.Select(r => r.Address));
        Assert.Equal("client.test", message.Session.HeloName);

        // The transaction is reset: a second message needs a new MAIL.
        Assert.Equal("503 5.5.1", (await client.CommandAsync("RCPT TO:<c@example.org>")).Status);
        Assert.Equal("250 2.0.0", (await client.SendMessageAsync("s2@example.com", ["c@example.org"], "Second\r\n")).Status);
        Assert.Equal(2, server.Handler.Messages.Count);
        Assert.Equal("221 2.0.0 Bye", (await client.CommandAsync("QUIT")).Lines[0]);
        Assert.True(await client.WaitForCloseAsync());
    }

    [Fact]
    public async Task Delivers_a_message_sent_with_bdat_chunks()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();
        await client.CommandAsync("MAIL FROM:<s@example.com> BODY=8BITMIME");
        await client.CommandAsync("RCPT TO:<r@example.org>");

        // Chunks are raw octets: no dot-stuffing; a CRLF split between two chunks is one line end.
        await client.SendAsync("BDAT 6\r\n.\r\nab\rBDAT 8\r\n\n.\r\nx\0\r\n");
        Assert.Equal("250 2.0.0", (await client.ReadReplyAsync()).Status);
        Assert.Equal("250 2.0.0", (await client.ReadReplyAsync()).Status);
        var last = await client.CommandAsync("BDAT 0 LAST");

        Assert.Equal("250 2.0.0", last.Status);
        var message = Assert.Single(server.Handler.Messages);
        Assert.True(message.Completed);
        Assert.Equal(".\r\nab\r\n.\r\nx\0\r\n", message.Text);
    }

    [Fact]
    public async Task Accepts_a_single_bdat_last_chunk()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();
        await client.CommandAsync("MAIL FROM:<s@example.com>");
        await client.CommandAsync("RCPT TO:<r@example.org>");

        await client.SendAsync("BDAT 12 LAST\r\nHello world!");

        Assert.Equal("250 2.0.0", (await client.ReadReplyAsync()).Status);
        Assert.Equal("Hello world!", Assert.Single(server.Handler.Messages).Text);
        Assert.Equal("250 2.0.0", (await client.CommandAsync("NOOP")).Status);
    }

    [Fact]
    public async Task Refuses_data_after_bdat_and_bdat_without_transaction_skips_the_chunk()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();

        // No transaction: the 5 octets "NOOP\n" must be skipped, not executed.
        await client.SendAsync("BDAT 5\r\nNOOP\nRSET\r\n");
        Assert.Equal("503 5.5.1", (await client.ReadReplyAsync()).Status);
        Assert.Equal("250 2.0.0 Ok", (await client.ReadReplyAsync()).Lines[0]);

        await client.CommandAsync("MAIL FROM:<s@example.com>");
        await client.CommandAsync("RCPT TO:<r@example.org>");
        await client.SendAsync("BDAT 3\r\nabc");
        Assert.Equal(250, (await client.ReadReplyAsync()).Code);
        Assert.Equal("503 5.5.1", (await client.CommandAsync("DATA")).Status);
        Assert.Equal("503 5.5.1", (await client.CommandAsync("RCPT TO:<x@example.org>")).Status);
        Assert.Equal("250 2.0.0", (await client.CommandAsync("RSET")).Status);
        var message = Assert.Single(server.Handler.Messages);
        Assert.True(message.Disposed);
        Assert.False(message.Completed);
    }

    [Fact]
    public async Task Quit_is_answered_and_the_connection_ends_with_a_clean_close()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();

        Assert.Equal("221 2.0.0", (await client.CommandAsync("QUIT")).Status);

        Assert.True(await client.ClosesCleanlyAsync(TimeSpan.FromSeconds(2)));
        await Poll.UntilAsync(() => server.Server.ActiveSessions == 0, "session to end");
    }

    [Fact]
    public async Task Bytes_sent_after_quit_do_not_reset_the_connection_before_the_reply_is_read()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();

        // More than one read of the server's takes, so some of it is still unread in the kernel when it closes:
        // closing over unread input would send RST, and a reset can destroy the 221 before the client reads it.
        await client.SendAsync("QUIT\r\n" + string.Concat(Enumerable.Repeat("NOOP after quit\r\n", 2000)));
        await Task.Delay(200);

        Assert.Equal("221 2.0.0", (await client.ReadReplyAsync()).Status);
        Assert.True(await client.ClosesCleanlyAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task Pipelined_commands_get_replies_in_order()
    {
        var handler = new RecordingHandler
        {
            OnRecipient = r => r.LocalPart == "nobody" ? new SmtpReply(550, "5.1.1", "No such user") : null,
        };
        await using var server = await TestServer.StartAsync(handler: handler);
        var client = await server.ConnectAsync();

        await client.SendAsync("EHLO client.test\r\nMAIL FROM:<s@example.com>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<b@example.org>\r\nNOOP\r\nDATA\r\n");
        var replies = await client.ReadRepliesAsync(7);

        Assert.Equal(["250", "250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "250 2.0.0", "354"],
            replies.Select(r => r.Code == 250 && r.Lines.Count > 1 ? "250" : r.Code == 354 ? "354" : r.Status));
        await client.SendAsync("Body\r\n.\r\nRSET\r\nQUIT\r\n");
        var tail = await client.ReadRepliesAsync(3);
        Assert.Equal(["250 2.0.0", "250 2.0.0", "221 2.0.0"], tail.Select(r => r.Status));
        Assert.Equal(["a@example.org", "b@example.org"], Assert.Single(server.Handler.Messages).Transaction.Recipients.Select(r => r.Address));
    }

    [Fact]
    public async Task Pipelined_replies_are_flushed_together()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();
        var batch = string.Concat(Enumerable.Repeat("NOOP\r\n", 50));

        await client.SendAsync(batch);
        var replies = await client.ReadRepliesAsync(50);

        Assert.All(replies, r => Assert.Equal("250 2.0.0", r.Status));
    }

    [Fact]
    public async Task Data_without_recipients_is_refused_and_session_goes_on()
    {
        var handler = new RecordingHandler { OnRecipient = _ => new SmtpReply(550, "5.7.1", "Relay denied") };
        await using var server = await TestServer.StartAsync(handler: handler);
        var client = await server.ConnectEhloAsync();

        await client.SendAsync("MAIL FROM:<s@example.com>\r\nRCPT TO:<x@example.net>\r\nDATA\r\n");
        var replies = await client.ReadRepliesAsync(3);

        Assert.Equal(["250 2.1.0", "550 5.7.1", "554 5.5.1"], replies.Select(r => r.Status));
        Assert.Equal("554 5.5.1 No valid recipients", replies[2].Lines[0]);
        // The transaction stays open until RSET, as after any refused DATA.
        Assert.Equal("503 5.5.1", (await client.CommandAsync("MAIL FROM:<s@example.com>")).Status);
        Assert.Equal("250 2.0.0", (await client.CommandAsync("RSET")).Status);
        Assert.Equal("250 2.1.0", (await client.CommandAsync("MAIL FROM:<s@example.com>")).Status);
    }

    [Fact]
    public async Task Enforces_command_sequence()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectAsync();

        Assert.Equal("503 5.5.1", (await client.CommandAsync("MAIL FROM:<a@example.com>")).Status);
        await client.CommandAsync("EHLO client.test");
        Assert.Equal("503 5.5.1", (await client.CommandAsync("RCPT TO:<a@example.com>")).Status);
        Assert.Equal("503 5.5.1", (await client.CommandAsync("DATA")).Status);
        Assert.Equal("250 2.1.0", (await client.CommandAsync("MAIL FROM:<a@example.com>")).Status);
        Assert.Equal("503 5.5.1", (await client.CommandAsync("MAIL FROM:<a@example.com>")).Status);
        Assert.Equal("250 2.0.0", (await client.CommandAsync("RSET")).Status);
        Assert.Equal("250 2.1.0", (await client.CommandAsync("MAIL FROM:<a@example.com>")).Status);
    }

    [Fact]
    public async Task Ehlo_resets_a_transaction_in_progress()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();
        await client.CommandAsync("MAIL FROM:<s@example.com>");
        await client.CommandAsync("RCPT TO:<r@example.org>");

        Assert.Equal(250, (await client.CommandAsync("EHLO again.test")).Code);

        Assert.Equal("503 5.5.1", (await client.CommandAsync("DATA")).Status);
        Assert.Equal("250 2.1.0", (await client.CommandAsync("MAIL FROM:<s@example.com>")).Status);
    }

    [Fact]
    public async Task Answers_vrfy_expn_help_noop_and_unknown_commands()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();

        Assert.Equal(["252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery"], (await client.CommandAsync("VRFY someone")).Lines);
        Assert.Equal("501 5.5.4", (await client.CommandAsync("VRFY")).Status);
        Assert.Equal("502 5.5.1", (await client.CommandAsync("EXPN staff")).Status);
        Assert.Equal("214 2.0.0", (await client.CommandAsync("HELP")).Status);
        Assert.Equal("250 2.0.0", (await client.CommandAsync("noop whatever")).Status);
        Assert.Equal("500 5.5.2", (await client.CommandAsync("FOOBAR")).Status);
        Assert.Equal("500 5.5.2", (await client.CommandAsync("")).Status);
        Assert.Equal("501 5.5.4", (await client.CommandAsync("RSET now")).Status);
        Assert.Equal("501 5.5.4", (await client.CommandAsync("EHLO")).Status);
    }

    [Fact]
    public async Task Rejects_a_command_line_ending_in_bare_lf()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();

        await client.SendAsync("NOOP\nNOOP\rNOOP\r\n");

        Assert.Equal("500 5.5.2", (await client.ReadReplyAsync()).Status);
        Assert.Equal("500 5.5.2", (await client.ReadReplyAsync()).Status);
        Assert.Equal("250 2.0.0", (await client.CommandAsync("NOOP")).Status);
    }

    [Theory]
    [InlineData("MAIL FROM:<@relay.example,@b.example:user@example.com>", "501 5.1.3")]
    [InlineData("MAIL FROM:<user@>", "501 5.1.3")]
    [InlineData("MAIL FROM:<user@exa mple.com>", "501 5.1.3")]
    [InlineData("MAIL FROM:user@example.com", "501 5.5.4")]
    [InlineData("MAIL FROM:<user@example.com> FOO=BAR", "555 5.5.4")]
    [InlineData("MAIL FROM:<user@example.com> SIZE=abc", "501 5.5.4")]
    [InlineData("MAIL FROM:<user@example.com> BODY=9BIT", "501 5.5.4")]
    [InlineData("MAIL FROM:<user@example.com> SIZE=1 SIZE=2", "501 5.5.4")]
    [InlineData("MAIL FROM:<usér@example.com>", "553 5.6.7")]
    [InlineData("MAIL FROM:<usér@exämple.com> SMTPUTF8", "250 2.1.0")]
    [InlineData("MAIL FROM:<>", "250 2.1.0")]
    [InlineData("MAIL FROM: <user@example.com>", "250 2.1.0")]
    [InlineData("mail from:<\"john doe\"@example.com> body=8bitmime", "250 2.1.0")]
    [InlineData("MAIL FROM:<user@[192.0.2.1]>", "250 2.1.0")]
    [InlineData("MAIL FROM:<user@[IPv6:2001:db8::1]>", "250 2.1.0")]
    [InlineData("MAIL FROM:<user@[300.1.1.1]>", "501 5.1.3")]
    [InlineData("MAIL FROM:<user@example.com.>", "501 5.1.3")]
    [InlineData("MAIL FROM:<.user@example.com>", "501 5.1.3")]
    public async Task Checks_mail_from_syntax(string command, string expected)
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();

        Assert.Equal(expected, (await client.CommandAsync(command)).Status);
    }

    [Fact]
    public async Task Passes_addresses_to_the_handler_as_written()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();

        await client.CommandAsync("MAIL FROM:<\"john doe\"@Example.COM> SIZE=100 BODY=8BITMIME");
        Assert.Equal("250 2.1.5", (await client.CommandAsync("RCPT TO:<Postmaster>")).Status);
        Assert.Equal("250 2.1.5", (await client.CommandAsync("RCPT TO:<u@[192.0.2.1]>")).Status);
        Assert.Equal("501 5.1.3", (await client.CommandAsync("RCPT TO:<>")).Status);
        Assert.Equal("555 5.5.4", (await client.CommandAsync("RCPT TO:<a@example.org> NOTIFY=NEVER")).Status);
        Assert.Equal("553 5.6.7", (await client.CommandAsync("RCPT TO:<ü@example.org>")).Status);

        var mail = Assert.Single(server.Handler.Mails);
        Assert.Equal(new SmtpAddress("\"john doe\"", "Example.COM"), mail.From);
        Assert.Equal(100, mail.DeclaredSize);
        Assert.Equal("8BITMIME", mail.Body);
        Assert.Equal([new SmtpAddress("Postmaster", ""), new SmtpAddress("u", "[192.0.2.1]")], server.Handler.Recipients);
        Assert.Equal("Postmaster", server.Handler.Recipients.First().Address);
    }

    [Fact]
    public async Task Accepts_utf8_recipients_when_smtputf8_was_given()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();

        await client.CommandAsync("MAIL FROM:<s@example.com> SMTPUTF8");
        Assert.Equal("250 2.1.5", (await client.CommandAsync("RCPT TO:<用户@例子.广告>")).Status);

        Assert.Equal(new SmtpAddress("用户", "例子.广告"), Assert.Single(server.Handler.Recipients));
        Assert.True(Assert.Single(server.Handler.Mails).SmtpUtf8);
    }

    [Fact]
    public async Task Formats_multiline_handler_replies_and_repairs_bad_enhanced_codes()
    {
        var handler = new RecordingHandler
        {
            OnMail = t => t.From.LocalPart == "bad" ? new SmtpReply(550, "5.7.1", "First line\nSecond line") : null,
            OnRecipient = _ => new SmtpReply(550, "", "no code\r\ninjected\u0007"),
        };
        await using var server = await TestServer.StartAsync(handler: handler);
        var client = await server.ConnectEhloAsync();

        Assert.Equal(["550-5.7.1 First line", "550 5.7.1 Second line"], (await client.CommandAsync("MAIL FROM:<bad@example.com>")).Lines);
        await client.CommandAsync("MAIL FROM:<good@example.com>");
        Assert.Equal(["550-5.0.0 no code", "550 5.0.0 injected "], (await client.CommandAsync("RCPT TO:<r@example.org>")).Lines);
    }

    [Fact]
    public async Task Handler_exception_gives_451_and_the_session_continues()
    {
        var fail = true;
        var handler = new RecordingHandler
        {
            OnMail = _ => fail ? throw new InvalidOperationException("database down") : null,
        };
        await using var server = await TestServer.StartAsync(handler: handler);
        var client = await server.ConnectEhloAsync();
        var other = await server.ConnectEhloAsync();

        Assert.Equal("451 4.3.0 Temporary server error", (await client.CommandAsync("MAIL FROM:<s@example.com>")).Lines[0]);
        fail = false;
        Assert.Equal("250 2.0.0", (await client.SendMessageAsync("s@example.com", ["r@example.org"], "x\r\n")).Status);
        Assert.Equal("250 2.0.0", (await other.CommandAsync("NOOP")).Status);
    }

    [Fact]
    public async Task Writer_exception_gives_451_after_the_data_and_the_session_continues()
    {
        var handler = new RecordingHandler { FailWrite = () => new IOException("disk full") };
        await using var server = await TestServer.StartAsync(handler: handler);
        var client = await server.ConnectEhloAsync();

        var reply = await client.SendMessageAsync("s@example.com", ["r@example.org"], "line\r\nNOOP\r\n");

        Assert.Equal("451 4.3.0", reply.Status);
        Assert.True(Assert.Single(server.Handler.Messages).Disposed);
        Assert.Equal("250 2.0.0", (await client.CommandAsync("NOOP")).Status);
    }

    [Fact]
    public async Task Refuses_binarymime_which_it_does_not_offer()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectAsync();
        var ehlo = await client.CommandAsync("EHLO client.test");

        var reply = await client.CommandAsync("MAIL FROM:<s@example.com> BODY=BINARYMIME");

        Assert.Contains("250-CHUNKING", ehlo.Lines);
        Assert.DoesNotContain(ehlo.Lines, l => l.Contains("BINARYMIME", StringComparison.Ordinal));
        Assert.Equal("555 5.5.4 BODY=BINARYMIME is not supported; send the message as 8BITMIME or 7BIT", reply.Lines[0]);
        Assert.Empty(server.Handler.Mails);
        Assert.Equal("250 2.1.0", (await client.CommandAsync("MAIL FROM:<s@example.com> BODY=8BITMIME")).Status);
    }

    [Fact]
    public async Task Each_connection_gets_a_unique_session_id()
    {
        await using var server = await TestServer.StartAsync();
        for (var i = 0; i < 5; i++)
        {
            var client = await server.ConnectEhloAsync();
            await client.CommandAsync("MAIL FROM:<s@example.com>");
        }

        Assert.Equal(5, server.Handler.Sessions.Select(s => s.SessionId).Distinct().Count());
        Assert.All(server.Handler.Sessions, s => Assert.Equal(server.EndPoint, s.LocalEndPoint));
        Assert.NotEqual(0, server.EndPoint.Port);
    }

    [Fact]
    public async Task Handles_a_message_split_into_many_small_writes()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();
        await client.CommandAsync("MAIL FROM:<s@example.com>");
        await client.CommandAsync("RCPT TO:<r@example.org>");
        await client.CommandAsync("DATA");

        var content = "a\r\n..b\r\n.\r\n";
        foreach (var b in Encoding.ASCII.GetBytes(content))
        {
            await client.SendAsync([b]);
        }

        Assert.Equal("250 2.0.0", (await client.ReadReplyAsync()).Status);
        Assert.Equal("a\r\n.b\r\n", Assert.Single(server.Handler.Messages).Text);
    }
}
