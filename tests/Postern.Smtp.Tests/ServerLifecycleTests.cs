using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using Postern.Smtp.Tests.Infrastructure;

namespace Postern.Smtp.Tests;

public sealed class ServerLifecycleTests
{
    [Fact]
    public async Task Binds_every_listener_and_reports_the_real_ports()
    {
        await using var server = await TestServer.StartAsync(null, null, TestServer.Listener(name: "a"), TestServer.Listener(withCertificate: false, name: "b"));

        Assert.Equal(2, server.Server.BoundEndPoints.Count);
        Assert.All(server.Server.BoundEndPoints, e => Assert.NotEqual(0, e.Port));
        var second = await server.ConnectAsync(listener: 1);
        var ehlo = await second.CommandAsync("EHLO client.test");
        Assert.DoesNotContain(ehlo.Lines, l => l.EndsWith("STARTTLS", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Throws_a_clear_error_when_the_port_is_taken()
    {
        await using var first = await TestServer.StartAsync();
        var listener = new SmtpListenerOptions { EndPoint = first.EndPoint, RequireTls = false, Name = "dup" };
        await using var second = new SmtpServer([listener], new SmtpLimits(), new RecordingHandler(), NullLoggerFactory.Instance);

        var ex = await Assert.ThrowsAsync<IOException>(() => second.StartAsync(CancellationToken.None));

        Assert.Contains("'dup'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Refuses_a_tls_required_listener_without_certificate()
    {
        var listener = new SmtpListenerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0), RequireTls = true };

        var ex = Assert.Throws<ArgumentException>(() => new SmtpServer([listener], new SmtpLimits(), new RecordingHandler(), NullLoggerFactory.Instance));

        Assert.Contains("RequireTls", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stop_sends_421_to_idle_sessions_and_closes_them()
    {
        await using var server = await TestServer.StartAsync();
        var idle = await server.ConnectEhloAsync();
        var fresh = await server.ConnectAsync();

        await server.Server.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);

        Assert.Equal("421 4.3.2 Service shutting down", (await idle.ReadReplyAsync()).Lines[0]);
        Assert.Equal("421 4.3.2", (await fresh.ReadReplyAsync()).Status);
        Assert.True(await idle.WaitForCloseAsync());
        Assert.Equal(0, server.Server.ActiveSessions);
        await Assert.ThrowsAnyAsync<Exception>(async () => await SmtpTestClient.ConnectAsync(server.EndPoint));
    }

    [Fact]
    public async Task Stop_lets_a_message_in_progress_finish()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();
        await client.CommandAsync("MAIL FROM:<s@example.com>");
        await client.CommandAsync("RCPT TO:<r@example.org>");
        await client.CommandAsync("DATA");
        await client.SendAsync("first part\r\n");

        var stop = server.Server.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
        await client.SendAsync("second part\r\n.\r\n");

        Assert.Equal("250 2.0.0", (await client.ReadReplyAsync()).Status);
        Assert.Equal("421 4.3.2", (await client.ReadReplyAsync()).Status);
        await stop;
        Assert.Equal("first part\r\nsecond part\r\n", Assert.Single(server.Handler.Messages).Text);
    }

    [Fact]
    public async Task Stop_aborts_sessions_when_its_token_fires()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();
        await client.CommandAsync("MAIL FROM:<s@example.com>");
        await client.CommandAsync("RCPT TO:<r@example.org>");
        await client.CommandAsync("DATA");

        await server.Server.StopAsync(new CancellationTokenSource(TimeSpan.FromMilliseconds(200)).Token);

        Assert.Equal(0, server.Server.ActiveSessions);
        Assert.True(await client.WaitForCloseAsync());
        Assert.True(Assert.Single(server.Handler.Messages).Disposed);
    }

    [Fact]
    public async Task Client_disconnect_mid_session_is_harmless()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();
        await client.CommandAsync("MAIL FROM:<s@example.com>");
        await client.CommandAsync("RCPT TO:<r@example.org>");
        await client.CommandAsync("DATA");
        await client.SendAsync("half a mess");

        await client.DisposeAsync();

        await Poll.UntilAsync(() => server.Server.ActiveSessions == 0, "session to end");
        Assert.True(Assert.Single(server.Handler.Messages).Disposed);
        var next = await server.ConnectEhloAsync();
        Assert.Equal("250 2.0.0", (await next.SendMessageAsync("s@example.com", ["r@example.org"], "ok\r\n")).Status);
    }
}
