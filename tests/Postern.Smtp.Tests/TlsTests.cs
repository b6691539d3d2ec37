using System.Security.Authentication;
using Postern.Smtp.Tests.Infrastructure;

namespace Postern.Smtp.Tests;

public sealed class TlsTests
{
    [Fact]
    public async Task Rejects_mail_before_starttls_on_tls_required_listener()
    {
        await using var server = await TestServer.StartAsync(listeners: TestServer.Listener(requireTls: true));
        var client = await server.ConnectEhloAsync();

        Assert.Equal("530 5.7.0 Must issue a STARTTLS command first", (await client.CommandAsync("MAIL FROM:<s@example.com>")).Lines[0]);
        Assert.Equal("530 5.7.0", (await client.CommandAsync("RCPT TO:<r@example.org>")).Status);
        Assert.Equal("530 5.7.0", (await client.CommandAsync("DATA")).Status);
        Assert.Equal("250 2.0.0", (await client.CommandAsync("NOOP")).Status);
        Assert.Empty(server.Handler.Mails);
    }

    [Fact]
    public async Task Skips_the_chunk_of_a_bdat_refused_before_starttls()
    {
        await using var server = await TestServer.StartAsync(listeners: TestServer.Listener(requireTls: true));
        var client = await server.ConnectEhloAsync();

        await client.SendAsync("BDAT 6 LAST\r\nNOOP\r\nNOOP\r\n");

        Assert.Equal("530 5.7.0", (await client.ReadReplyAsync()).Status);
        Assert.Equal("250 2.0.0", (await client.ReadReplyAsync()).Status);
        Assert.Equal("250 2.0.0", (await client.CommandAsync("NOOP")).Status);
    }

    [Fact]
    public async Task Runs_a_transaction_after_starttls_and_records_tls_details()
    {
        await using var server = await TestServer.StartAsync(listeners: TestServer.Listener(requireTls: true));
        var client = await server.ConnectEhloAsync();

        var ssl = await client.StartTlsAsync(TestCertificate.ClientInstance);
        var ehlo = await client.CommandAsync("EHLO client.test");
        var reply = await client.SendMessageAsync("s@example.com", ["r@example.org"], "Secret\r\n");

        Assert.DoesNotContain(ehlo.Lines, l => l.Contains("STARTTLS", StringComparison.Ordinal));
        Assert.Equal("250 2.0.0", reply.Status);
        var session = Assert.Single(server.Handler.Messages).Session;
        Assert.True(session.IsTls);
        Assert.Equal(ssl.SslProtocol, session.TlsProtocol);
        Assert.True(session.TlsProtocol is SslProtocols.Tls12 or SslProtocols.Tls13);
        Assert.Equal(ssl.NegotiatedCipherSuite.ToString(), session.TlsCipher);
        Assert.Equal("CN=client.test", session.ClientCertificate?.Subject);
        Assert.Equal("Secret\r\n", Assert.Single(server.Handler.Messages).Text);
        Assert.Equal("503 5.5.1", (await client.CommandAsync("STARTTLS")).Status);
    }

    [Fact]
    public async Task Accepts_clients_without_a_certificate()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();

        await client.StartTlsAsync();
        await client.CommandAsync("EHLO client.test");
        await client.CommandAsync("MAIL FROM:<s@example.com>");

        var session = Assert.Single(server.Handler.Sessions);
        Assert.True(session.IsTls);
        Assert.Null(session.ClientCertificate);
    }

    [Fact]
    public async Task Forgets_the_helo_name_after_starttls()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();

        await client.StartTlsAsync();

        Assert.Equal("503 5.5.1", (await client.CommandAsync("MAIL FROM:<s@example.com>")).Status);
        await client.CommandAsync("EHLO second.test");
        await client.CommandAsync("MAIL FROM:<s@example.com>");
        Assert.Equal("second.test", Assert.Single(server.Handler.Sessions).HeloName);
    }

    [Fact]
    public async Task Discards_commands_injected_after_starttls()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();

        // CVE-2011-0411: plaintext pipelined behind STARTTLS must not run inside the TLS session.
        await client.SendAsync("STARTTLS\r\nEHLO evil.test\r\nMAIL FROM:<evil@example.com>\r\n");
        Assert.Equal(220, (await client.ReadReplyAsync()).Code);
        await client.HandshakeAsync();

        Assert.Equal("503 5.5.1", (await client.CommandAsync("RCPT TO:<r@example.org>")).Status);
        Assert.Equal("503 5.5.1", (await client.CommandAsync("MAIL FROM:<s@example.com>")).Status); // no EHLO yet either
        Assert.Empty(server.Handler.Mails);
        await client.CommandAsync("EHLO good.test");
        Assert.Equal("250 2.0.0", (await client.SendMessageAsync("s@example.com", ["r@example.org"], "ok\r\n")).Status);
        Assert.Equal("good.test", Assert.Single(server.Handler.Messages).Session.HeloName);
    }

    [Fact]
    public async Task Refuses_starttls_inside_a_transaction()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();
        await client.CommandAsync("MAIL FROM:<s@example.com>");

        Assert.Equal("503 5.5.1", (await client.CommandAsync("STARTTLS")).Status);
    }

    [Fact]
    public async Task Closes_the_session_when_the_handshake_fails()
    {
        await using var server = await TestServer.StartAsync();
        var client = await server.ConnectEhloAsync();
        Assert.Equal(220, (await client.CommandAsync("STARTTLS")).Code);

        await client.SendAsync("this is not a TLS client hello\r\n\r\n");

        Assert.True(await client.WaitForCloseAsync());
        await Poll.UntilAsync(() => server.Server.ActiveSessions == 0, "session to end");
    }
}
