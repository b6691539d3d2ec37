using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>The whole inbound path with real MTAs on both sides of Postern.</summary>
public sealed class InboundRelayTests(ITestOutputHelper output) : EndToEndTest(output)
{
    [Fact]
    public async Task Relays_m365_mail_to_tenant_mta_with_loop_token_without_key_over_tls_with_client_certificate()
    {
        var certs = Directory.Sub("certs");
        var m365Certificate = TestCertificate.Create(certs, "m365client", "mail.protection.outlook.test", "Test M365 Outbound");
        var mtaCertificate = TestCertificate.Create(certs, "tenantmta", "tenant-mta.test");
        var tenantMta = Own(await PostfixInstance.StartTenantMtaAsync(Directory, ["contoso.test"], mtaCertificate));

        var config = new PosternConfig
        {
            Listeners = [new PosternListener("m365", FreePort.Next(), RequireTls: true)],
            DeliveryRequireTls = true,
            ValidateServerCertificate = false,
        };
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{tenantMta.Port}");
        await Postern.StartServeAsync(config);
        var m365 = Own(await PostfixInstance.StartM365SideAsync(Directory, config.First.Port, m365Certificate));

        // Exchange Online's redirect rule adds the key header; swaks plays the Internet sender.
        var sent = await Swaks.SendAsync(m365.Port, "sender@external.test", "alice@contoso.test", "inbound through postern",
            "--add-header", contoso.KeyHeader);
        Assert.True(sent.ExitCode == 0, sent.ToString());

        var messages = await tenantMta.WaitForMessagesAsync(1, TimeSpan.FromSeconds(60), Diagnostics);
        var mail = new MailText(Assert.Single(messages));
        Assert.Equal("inbound through postern", mail.Header("Subject"));
        Assert.Equal(contoso.LoopToken, mail.Header("X-Postern-Loop"));
        Assert.False(mail.HasHeader("X-Postern-Key"), "the relay key must not leave Postern:\n" + mail.HeaderSection);
        Assert.DoesNotContain(contoso.RelayKey, mail.Text);

        // The tenant MTA's own Received header (the top one) records Postern's TLS session and client certificate.
        var received = mail.Headers("Received");
        Assert.Contains("with ESMTPS", received[0]);
        Assert.Matches(ClientCertificate.ReceivedPattern(), received[0]);

        // The M365 side saw "250 … queued as ID"; Postern's Received header (the next one) carries that id.
        var posternId = Assert.Single(m365.RelayedQueueIds());
        Assert.Contains($" id {posternId}", received[1]);
    }

    [Fact]
    public async Task Each_tenants_mail_goes_back_with_that_tenants_own_client_certificate_over_its_own_connections()
    {
        // Exchange Online attributes mail arriving on an OnPremises connector by the certificate's domain first: two
        // tenants behind one Postern must not present one shared certificate (MC1226222).
        var certs = Directory.Sub("certs");
        var m365Certificate = TestCertificate.Create(certs, "m365client", "mail.protection.outlook.test", "Test M365 Outbound");
        var mtaCertificate = TestCertificate.Create(certs, "tenantmta", "tenant-mta.test");
        var exchange = Own(await PostfixInstance.StartTenantMtaAsync(Directory, ["contoso.test", "fabrikam.test"], mtaCertificate));
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("m365", FreePort.Next(), RequireTls: true)],
            DeliveryRequireTls = true,
            ValidateServerCertificate = false,
        };
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{exchange.Port}");
        var fabrikam = await Postern.CreateTenantAsync("fabrikam", "fabrikam.test", $"127.0.0.1:{exchange.Port}");
        await Postern.StartServeAsync(config);
        var m365 = Own(await PostfixInstance.StartM365SideAsync(Directory, config.First.Port, m365Certificate));

        foreach (var (tenant, to) in new[] { (contoso, "alice@contoso.test"), (fabrikam, "bob@fabrikam.test"), (contoso, "carol@contoso.test") })
        {
            var sent = await Swaks.SendAsync(m365.Port, "sender@external.test", to, $"for {to}", "--add-header", tenant.KeyHeader);
            Assert.True(sent.ExitCode == 0, sent.ToString());
        }

        var delivered = (await exchange.WaitForMessagesAsync(3, TimeSpan.FromSeconds(60), Diagnostics)).Select(m => new MailText(m)).ToList();
        foreach (var (tenant, subject) in new[] { (contoso, "for alice@contoso.test"), (fabrikam, "for bob@fabrikam.test"), (contoso, "for carol@contoso.test") })
        {
            var mail = Assert.Single(delivered, m => m.Header("Subject") == subject);
            Assert.Matches(ClientCertificate.ReceivedPattern($"{tenant.TenantId}.eu.postern.example"), mail.Headers("Received")[0]);
        }
        var shown = (await Postern.RunCliAsync("tenant", "certificate", "show", "fabrikam")).EnsureSuccess();
        Assert.Contains($"{fabrikam.TenantId}.eu.postern.example (self-signed", shown.StdOut, StringComparison.Ordinal);
    }
}
