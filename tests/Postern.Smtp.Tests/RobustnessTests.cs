using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Postern.Smtp.Tests.Infrastructure;

namespace Postern.Smtp.Tests;

public sealed class RobustnessTests
{
    [Fact]
    public async Task A_slow_handler_in_one_session_does_not_hold_up_another()
    {
        var gate = new TaskCompletionSource();
        var waiting = false;
        var handler = new RecordingHandler
        {
            BeforeMail = async (t, ct) =>
            {
                if (t.From.LocalPart == "slow")
                {
                    waiting = true;
                    await gate.Task.WaitAsync(ct);
                }
            },
        };
        await using var server = await TestServer.StartAsync(handler: handler);
        var blocked = await server.ConnectEhloAsync();
        var free = await server.ConnectEhloAsync();

        await blocked.SendAsync("MAIL FROM:<slow@example.com>\r\n");
        await Poll.UntilAsync(() => waiting, "the slow MAIL to reach the handler");
        var reply = await free.SendMessageAsync("s@example.com", ["r@example.org"], "quick\r\n");

        Assert.Equal("250 2.0.0", reply.Status);
        gate.SetResult();
        Assert.Equal("250 2.1.0", (await blocked.ReadReplyAsync()).Status);
    }

    [Fact]
    public async Task A_connection_reset_is_logged_quietly_and_the_writer_is_dropped()
    {
        var logs = new CapturingLoggerFactory();
        await using var server = await TestServer.StartAsync(null, null, logs, TestServer.Listener());
        var client = await server.ConnectEhloAsync();
        await client.CommandAsync("MAIL FROM:<s@example.com>");
        await client.CommandAsync("RCPT TO:<r@example.org>");
        await client.CommandAsync("DATA");
        await client.SendAsync("partial content\r\n");
        await Poll.UntilAsync(() => server.Handler.Messages.Single().Content.Length > 0, "content to arrive");

        client.ResetConnection();

        await Poll.UntilAsync(() => server.Server.ActiveSessions == 0, "session to end");
        Assert.True(server.Handler.Messages.Single().Disposed);
        Assert.DoesNotContain(logs.Entries, e => e.Level >= LogLevel.Warning);
    }

    [Fact]
    public async Task Never_logs_message_content_or_header_values()
    {
        var logs = new CapturingLoggerFactory();
        var handler = new RecordingHandler { OnRecipient = r => r.LocalPart == "bad" ? throw new InvalidOperationException("boom") : null };
        await using var server = await TestServer.StartAsync(new SmtpLimits { MaxMessageSize = 2000 }, handler, logs, TestServer.Listener());
        var client = await server.ConnectEhloAsync();

        await client.SendMessageAsync("s@example.com", ["r@example.org"], "Subject: TOPSECRET-SUBJECT\r\n\r\nTOPSECRET-BODY\r\n");
        await client.CommandAsync("MAIL FROM:<s@example.com>");
        Assert.Equal("451 4.3.0", (await client.CommandAsync("RCPT TO:<bad@example.org>")).Status);
        await client.CommandAsync("RCPT TO:<r@example.org>");
        await client.CommandAsync("DATA");
        await client.SendAsync("X-Secret: TOPSECRET-HEADER\r\n" + new string('z', 3000) + "\r\n.\r\n");
        Assert.Equal("552 5.3.4", (await client.ReadReplyAsync()).Status);
        await client.CommandAsync("QUIT");
        await Poll.UntilAsync(() => server.Server.ActiveSessions == 0, "session to end");

        Assert.DoesNotContain(logs.Entries, e => e.Message.Contains("TOPSECRET", StringComparison.Ordinal));
        var failure = Assert.Single(logs.Entries, e => e.Level == LogLevel.Error);
        Assert.IsType<InvalidOperationException>(failure.Exception);
        Assert.Contains(failure.State, kv => kv.Key == "SessionId");
        var scope = Assert.IsAssignableFrom<IReadOnlyList<KeyValuePair<string, object?>>>(Assert.Single(failure.Scopes));
        Assert.Equal(["SessionId", "RemoteEndPoint"], scope.Select(kv => kv.Key));
    }
}
