using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>The peers the end-to-end tests rely on behave as the tests assume, without Postern in the path.</summary>
public sealed class InfrastructureSelfTests(ITestOutputHelper output) : EndToEndTest(output)
{
    [Fact]
    public async Task M365_side_postfix_relays_over_tls_with_client_certificate_into_tenant_mta_maildir()
    {
        var certs = Directory.Sub("certs");
        var client = TestCertificate.Create(certs, "m365client", "mail.protection.outlook.test", "Test M365 Outbound");
        var server = TestCertificate.Create(certs, "tenantmta", "tenant-mta.test");
        var tenantMta = Own(await PostfixInstance.StartTenantMtaAsync(Directory, ["contoso.test"], server));
        var m365 = Own(await PostfixInstance.StartM365SideAsync(Directory, tenantMta.Port, client));

        var sent = await Swaks.SendAsync(m365.Port, "sender@external.test", "alice@contoso.test", "self-test relay");
        Assert.True(sent.ExitCode == 0, sent.ToString());

        var messages = await tenantMta.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), () => m365.ReadLogTail());
        var mail = new MailText(Assert.Single(messages));
        Assert.Equal("self-test relay", mail.Header("Subject"));
        var top = mail.Headers("Received")[0];
        Assert.Contains("with ESMTPS", top);
        Assert.Matches(ClientCertificate.ReceivedPattern("mail.protection.outlook.test"), top);
        // The hop's queue id as the sender saw it is the id in the receiver's Received header.
        var relayedAs = Assert.Single(m365.RelayedQueueIds());
        Assert.Contains(relayedAs, mail.ReceivedIds());
    }

    [Fact]
    public async Task Smtp_sink_stops_and_restarts_on_the_same_port_keeping_messages()
    {
        var sink = Own(await SmtpSink.StartAsync(Directory));
        var first = await Swaks.SendAsync(sink.Port, "a@external.test", "b@contoso.test", "one");
        Assert.True(first.ExitCode == 0, first.ToString());
        await sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(10));

        await sink.StopAsync();
        Assert.False(FreePort.Accepts(sink.Port));
        await sink.StartAsync();
        var second = await Swaks.SendAsync(sink.Port, "a@external.test", "b@contoso.test", "two");
        Assert.True(second.ExitCode == 0, second.ToString());

        var messages = await sink.WaitForMessagesAsync(2, TimeSpan.FromSeconds(10));
        Assert.Equal(["one", "two"], messages.Select(m => m.Mail.Header("Subject")).Order());
        Assert.All(messages, m => Assert.Equal(["<b@contoso.test>"], m.RecipientArgs));
        Assert.All(messages, m => Assert.Empty(m.Mail.Headers("Received"))); // smtp-sink's own is not part of the message
        Assert.Equal(2, sink.Count);
    }

    [Fact]
    public async Task Ack_recording_proxy_records_each_queue_id_the_client_was_sent()
    {
        var certs = Directory.Sub("certs");
        var server = TestCertificate.Create(certs, "tenantmta", "tenant-mta.test");
        var tenantMta = Own(await PostfixInstance.StartTenantMtaAsync(Directory, ["contoso.test"], server));
        var proxy = Own(new AckRecordingProxy(tenantMta.Port));
        var file = Directory.PathOf("message.txt");
        await File.WriteAllTextAsync(file, "Subject: proxied\n\nhello\n");

        await using var source = SmtpSource.Start(proxy.Port, file, messages: 25, sessions: 5, "a@external.test", "alice@contoso.test");
        Assert.True(await source.WaitForExitAsync(TimeSpan.FromSeconds(60)), source.Output);
        Assert.True(source.ExitCode == 0, source.Output);

        var messages = await tenantMta.WaitForMessagesAsync(25, TimeSpan.FromSeconds(30));
        var delivered = messages.Select(m => new MailText(m).FirstReceivedId()).ToHashSet();
        Assert.Equal(25, proxy.AcknowledgedCount);
        Assert.Equal(delivered.Order(), proxy.AcknowledgedQueueIds.Order());
    }

    [Fact]
    public async Task Dns_server_answers_mx_for_any_name_from_wildcard()
    {
        var dns = Own(await DnsServer.StartAsync(Directory, """
            $TTL 300
            *.              IN MX 10 mx.sink.test.
            mx.sink.test.   IN A  127.0.0.1
            """));
        var query = await ExternalCommand.RunAsync("/usr/bin/python3",
            ["-c", $"from dnslib import DNSRecord; r = DNSRecord.parse(DNSRecord.question('evil.test', 'MX').send('127.0.0.1', {dns.Port}, tcp=True, timeout=5)); print(r.rr[0])"],
            TimeSpan.FromSeconds(30));
        query.EnsureSuccess();
        Assert.Contains("mx.sink.test.", query.StdOut);
    }
}
