using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using MailKit.Net.Smtp;
using MailKit.Security;
using Microsoft.Extensions.Logging.Abstractions;
using MimeKit;
using Postern.ExoEmulator.MailFlow;
using Postern.Smtp;

namespace Postern.M365.Tests;

/// <summary>
/// The emulator's mail side on its own, with SMTP clients that present whatever certificate a case needs: attribution
/// in Exchange Online's order, the refusals Exchange Online makes at RCPT, and what it does when a smart host fails.
/// </summary>
public sealed class EmulatorMailFlowTests : IAsyncLifetime
{
    private readonly string _maildir = Path.Combine(Path.GetTempPath(), "postern-emulator-mail-" + Guid.NewGuid().ToString("N"));
    private readonly ExoEmulator.ExoEmulator _emulator = new();
    private ExoTransport _transport = null!;
    private readonly List<IAsyncDisposable> _owned = [];

    private static readonly Guid ContosoId = Guid.Parse("11111111-1111-4111-8111-111111111111");
    private static readonly Guid FabrikamId = Guid.Parse("22222222-2222-4222-8222-222222222222");

    public async Task InitializeAsync()
    {
        _transport = await ExoTransport.StartAsync(_emulator, new MailFlowOptions
        {
            FrontDoor = new IPEndPoint(IPAddress.Loopback, 0),
            MaildirRoot = _maildir,
            RetryDelays = [TimeSpan.FromMilliseconds(300)],
            MaxAge = TimeSpan.FromSeconds(2),
        });
        foreach (var (id, name) in new[] { (ContosoId, "contoso"), (FabrikamId, "fabrikam") })
        {
            var tenant = _emulator.AddTenant(id, $"{name}.onmicrosoft.com");
            tenant.AddAcceptedDomain($"{name}.test");
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var owned in _owned)
            await owned.DisposeAsync();
        await _transport.DisposeAsync();
        try
        {
            Directory.Delete(_maildir, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    private ExoEmulator.EmulatedTenant Contoso => _emulator.Tenant(ContosoId);
    private ExoEmulator.EmulatedTenant Fabrikam => _emulator.Tenant(FabrikamId);

    private static void OnPremisesConnector(ExoEmulator.EmulatedTenant tenant, string certificateName) =>
        tenant.Invoke("New-InboundConnector", new JsonObject
        {
            ["Name"] = "From Postern",
            ["ConnectorType"] = "OnPremises",
            ["SenderDomains"] = new JsonArray("*"),
            ["TlsSenderCertificateName"] = certificateName,
            ["RequireTls"] = true,
        });

    [Fact]
    public async Task A_certificate_shared_by_two_tenants_attributes_mail_by_MAIL_FROM_to_the_sender_s_tenant_a_per_tenant_one_to_its_own()
    {
        // The anti-pattern of MC1226222: one certificate, not an accepted domain, on both tenants' connectors.
        OnPremisesConnector(Contoso, "*.eu.postern.example");
        OnPremisesConnector(Fabrikam, "*.eu.postern.example");
        using var shared = Certificate("*.eu.postern.example");

        await SendAsync(shared, "alice@contoso.test", "bob@fabrikam.test", "Shared");

        // Contoso's transport then hands it to fabrikam as mail from another tenant: Contoso's rules ran on Fabrikam's mail.
        var wrong = _transport.Log.Events.First(e => e.What == "received");
        Assert.Equal("contoso.onmicrosoft.com", wrong.Tenant);
        Assert.Contains("attributed by MAIL FROM domain contoso.test", wrong.Detail);

        // Each tenant's own name, in a domain the tenant has accepted: the certificate decides, whatever MAIL FROM says.
        Fabrikam.Invoke("Set-InboundConnector", new JsonObject { ["Identity"] = "From Postern", ["TlsSenderCertificateName"] = $"{FabrikamId}.eu.postern.example" });
        Fabrikam.AddAcceptedDomain($"{FabrikamId}.eu.postern.example");
        Contoso.Invoke("Set-InboundConnector", new JsonObject { ["Identity"] = "From Postern", ["TlsSenderCertificateName"] = $"{ContosoId}.eu.postern.example" });
        Contoso.AddAcceptedDomain($"{ContosoId}.eu.postern.example");
        using var own = Certificate($"{FabrikamId}.eu.postern.example");

        var before = _transport.Log.Events.Count(e => e.What == "received");
        await SendAsync(own, "alice@contoso.test", "bob@fabrikam.test", "Own");

        var right = Assert.Single(_transport.Log.Events.Where(e => e.What == "received").Skip(before));
        Assert.Equal("fabrikam.onmicrosoft.com", right.Tenant);
        Assert.Contains($"attributed by certificate domain {FabrikamId}.eu.postern.example", right.Detail);
        Assert.Single(_transport.Mailboxes.Messages("bob@fabrikam.test"), f => File.ReadAllText(f).Contains("Subject: Own"));
        var connection = _transport.Log.Connections[^1];
        Assert.Contains($"{FabrikamId}.eu.postern.example", connection.CertificateNames);
    }

    [Fact]
    public async Task A_disabled_connector_is_not_matched_and_a_certificate_not_in_an_accepted_domain_does_not_decide()
    {
        OnPremisesConnector(Contoso, $"{ContosoId}.eu.postern.example");
        using var certificate = Certificate($"{ContosoId}.eu.postern.example");

        // Not an accepted domain of contoso yet: attribution falls to MAIL FROM (contoso.test, which has the connector).
        await SendAsync(certificate, "alice@contoso.test", "carol@contoso.test", "By MAIL FROM");
        Assert.Contains("attributed by MAIL FROM domain contoso.test", _transport.Log.Events.Last(e => e.What == "received").Detail);

        Contoso.Invoke("Set-InboundConnector", new JsonObject { ["Identity"] = "From Postern", ["Enabled"] = false });
        // Relaying to the Internet needs an OnPremises connector: without one this is Internet mail and refused.
        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(certificate, "alice@contoso.test", "someone@outside.test", "Relay"));
        Assert.Equal(550, (int)refused.StatusCode);
        Assert.Contains("TenantAttribution; Relay Access Denied", refused.Message);
    }

    [Fact]
    public async Task Internet_mail_for_a_domain_no_tenant_has_is_refused_and_a_restricting_Partner_connector_refuses_other_addresses()
    {
        var relay = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(null, "x@external.test", "y@nowhere.test", "Relay"));
        Assert.Equal(550, (int)relay.StatusCode);
        Assert.Contains("TenantAttribution; Relay Access Denied", relay.Message);

        Contoso.Invoke("New-InboundConnector", new JsonObject
        {
            ["Name"] = "Reject mail not routed through MX",
            ["ConnectorType"] = "Partner",
            ["SenderDomains"] = new JsonArray("*"),
            ["SenderIPAddresses"] = new JsonArray("192.0.2.25"),
            ["RestrictDomainsToIPAddresses"] = true,
            ["RequireTls"] = false,
        });
        var locked = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(null, "x@external.test", "alice@contoso.test", "Locked"));
        Assert.Equal(550, (int)locked.StatusCode);
        Assert.Contains("TenantInboundAttribution", locked.Message);
        Assert.Contains(_transport.Log.Events, e => e.What == "refused" && e.Detail.Contains("5.7.51"));
        // Another tenant's mail is not touched by contoso's connector.
        await SendAsync(null, "x@external.test", "bob@fabrikam.test", "Fine");
        Assert.Single(_transport.Mailboxes.Messages("bob@fabrikam.test"));
    }

    [Fact]
    public async Task A_smart_host_whose_certificate_does_not_match_TlsDomain_is_retried_until_the_message_expires_then_the_sender_gets_an_NDR()
    {
        using var wrongName = Certificate("smtp.elsewhere.example");
        var sink = new SmtpServer([new SmtpListenerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 0), RequireTls = false, Certificate = wrongName, HostName = "sink" }],
            new SmtpLimits(), new NeverCalled(), NullLoggerFactory.Instance);
        await sink.StartAsync(CancellationToken.None);
        _owned.Add(sink);
        _transport.Options.SmartHostAddresses["postern.example.net"] = sink.BoundEndPoints[0];
        _transport.Options.TrustedCertificates.Add(wrongName);
        Contoso.Invoke("New-OutboundConnector", new JsonObject
        {
            ["Name"] = "To Postern",
            ["ConnectorType"] = "Partner",
            ["IsTransportRuleScoped"] = true,
            ["UseMXRecord"] = false,
            ["SmartHosts"] = new JsonArray("postern.example.net"),
            ["TlsSettings"] = "DomainValidation",
            ["TlsDomain"] = "*.eu.postern.example",
        });
        Contoso.Invoke("New-TransportRule", new JsonObject { ["Name"] = "Redirect", ["RouteMessageOutboundConnector"] = "To Postern", ["SentToScope"] = "InOrganization" });

        _transport.Submit(Contoso, "alice@contoso.test", ["carol@contoso.test"], "From: alice@contoso.test\r\nSubject: Scan me\r\n\r\nHi\r\n"u8.ToArray());

        var ndr = await WaitForFileAsync("alice@contoso.test");
        var text = File.ReadAllText(ndr);
        Assert.Contains("Subject: Undeliverable: Scan me", text);
        Assert.Contains("550 4.4.7 QUEUE.Expired", text);
        Assert.Contains("do not match TlsDomain '*.eu.postern.example'", text);
        Assert.Contains(_transport.Log.Events, e => e.What == "deferred");
        Assert.Empty(_transport.Mailboxes.Messages("carol@contoso.test"));
    }

    [Theory]
    [InlineData("Ignore")]
    [InlineData("Defer")]
    public async Task A_rule_routing_to_a_disabled_connector_follows_its_RuleErrorAction(string action)
    {
        Contoso.Invoke("New-OutboundConnector", new JsonObject
        {
            ["Name"] = "To Postern",
            ["ConnectorType"] = "Partner",
            ["IsTransportRuleScoped"] = true,
            ["UseMXRecord"] = false,
            ["SmartHosts"] = new JsonArray("postern.example.net"),
        });
        Contoso.Invoke("New-TransportRule", new JsonObject
        {
            ["Name"] = "Redirect",
            ["RouteMessageOutboundConnector"] = "To Postern",
            ["SentToScope"] = "InOrganization",
            ["RuleErrorAction"] = action,
        });
        Contoso.Invoke("Set-OutboundConnector", new JsonObject { ["Identity"] = "To Postern", ["Enabled"] = false });

        _transport.Submit(Contoso, "alice@contoso.test", ["carol@contoso.test"], "From: alice@contoso.test\r\nSubject: Rule error\r\n\r\nHi\r\n"u8.ToArray());

        if (action == "Ignore")
        {
            await WaitForFileAsync("carol@contoso.test");
            Assert.Contains(_transport.Log.Events, e => e.What == "rule error" && e.Detail.Contains("'To Postern'"));
            return;
        }
        // Defer: kept, the rules run again, and the message is returned when it expires; never delivered past the rule.
        var ndr = File.ReadAllText(await WaitForFileAsync("alice@contoso.test"));
        Assert.Contains("550 4.4.7 QUEUE.Expired", ndr);
        Assert.True(_transport.Log.Events.Count(e => e.What == "deferred") >= 2, string.Join("\n", _transport.Log.Events));
        Assert.Empty(_transport.Mailboxes.Messages("carol@contoso.test"));
    }

    [Fact]
    public async Task More_than_1000_recipients_are_refused_from_the_1001st()
    {
        using var client = await ConnectAsync(null);
        var message = Message("x@external.test", "alice@contoso.test", "Many");
        var recipients = Enumerable.Range(1, 1001).Select(i => MailboxAddress.Parse($"user{i}@contoso.test")).ToList();

        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => client.SendAsync(message, MailboxAddress.Parse("x@external.test"), recipients));

        Assert.Equal("user1001@contoso.test", refused.Mailbox?.Address);
        Assert.Equal(452, (int)refused.StatusCode);
    }

    [Fact]
    public async Task Its_DNS_answers_the_tenants_MX_the_front_door_and_the_ARC_key_and_NXDOMAIN_for_the_rest()
    {
        await using var dns = EmulatorDns.Start(_transport, new IPEndPoint(IPAddress.Loopback, 0),
            new Dictionary<string, string> { ["postern1._domainkey.arc.postern.example"] = "v=DKIM1; k=rsa; p=AAAA" });
        var client = new DnsClient.LookupClient(new DnsClient.LookupClientOptions(dns.EndPoint) { UseCache = false, Retries = 0, Timeout = TimeSpan.FromSeconds(2) });

        var mx = await client.QueryAsync("contoso.test", DnsClient.QueryType.MX);
        Assert.Equal("contoso-test.mail.protection.outlook.com.", Assert.Single(mx.Answers.MxRecords()).Exchange.Value);
        var a = await client.QueryAsync("contoso-test.mail.protection.outlook.com", DnsClient.QueryType.A);
        Assert.Equal(_transport.FrontDoorEndPoint.Address, Assert.Single(a.Answers.ARecords()).Address);
        var arc = await client.QueryAsync(_transport.Arc.DnsName, DnsClient.QueryType.TXT);
        Assert.Equal(_transport.Arc.DnsRecord, string.Concat(Assert.Single(arc.Answers.TxtRecords()).Text));
        var given = await client.QueryAsync("postern1._domainkey.arc.postern.example", DnsClient.QueryType.TXT);
        Assert.Equal("v=DKIM1; k=rsa; p=AAAA", string.Concat(Assert.Single(given.Answers.TxtRecords()).Text));
        var none = await client.QueryAsync("example.org", DnsClient.QueryType.TXT);
        Assert.Equal(DnsClient.DnsHeaderResponseCode.NotExistentDomain, none.Header.ResponseCode);
        var noData = await client.QueryAsync("contoso.test", DnsClient.QueryType.TXT);
        Assert.Equal(DnsClient.DnsHeaderResponseCode.NoError, noData.Header.ResponseCode);
        Assert.Empty(noData.Answers);
    }

    private async Task SendAsync(X509Certificate2? certificate, string from, string to, string subject)
    {
        using var client = await ConnectAsync(certificate);
        await client.SendAsync(Message(from, to, subject), MailboxAddress.Parse(from), [MailboxAddress.Parse(to)]);
        await client.DisconnectAsync(true);
    }

    private async Task<SmtpClient> ConnectAsync(X509Certificate2? certificate)
    {
        var client = new SmtpClient { ServerCertificateValidationCallback = (_, _, _, _) => true, CheckCertificateRevocation = false };
        if (certificate is not null)
            client.ClientCertificates = new X509CertificateCollection { certificate };
        var endPoint = _transport.FrontDoorEndPoint;
        await client.ConnectAsync(endPoint.Address.ToString(), endPoint.Port, certificate is null ? SecureSocketOptions.None : SecureSocketOptions.StartTls);
        return client;
    }

    private static MimeMessage Message(string from, string to, string subject)
    {
        var message = new MimeMessage { Subject = subject };
        message.From.Add(MailboxAddress.Parse(from));
        message.To.Add(MailboxAddress.Parse(to));
        message.Body = new TextPart("plain") { Text = "Hello." };
        return message;
    }

    private async Task<string> WaitForFileAsync(string mailbox)
    {
        for (var i = 0; i < 100; i++)
        {
            if (_transport.Mailboxes.Messages(mailbox) is [var first, ..])
                return first;
            await Task.Delay(100);
        }
        throw new TimeoutException($"nothing in {mailbox}: {string.Join("\n", _transport.Log.Events)}");
    }

    private static X509Certificate2 Certificate(string name)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(name);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(1));
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }

    /// <summary>A smart host the test expects never to get a message (its certificate is refused first).</summary>
    private sealed class NeverCalled : ISmtpTransactionHandler
    {
        public ValueTask<SmtpReply> MailFromAsync(SmtpSessionInfo session, SmtpTransaction transaction, CancellationToken cancellationToken) =>
            ValueTask.FromResult(new SmtpReply(451, "4.3.0", "this smart host should not have been reached"));

        public ValueTask<SmtpReply> RecipientAsync(SmtpSessionInfo session, SmtpTransaction transaction, SmtpAddress recipient, CancellationToken cancellationToken) =>
            ValueTask.FromResult(new SmtpReply(451, "4.3.0", "no"));

        public IMessageWriter BeginMessage(SmtpSessionInfo session, SmtpTransaction transaction) => throw new InvalidOperationException("not reached");
    }
}
