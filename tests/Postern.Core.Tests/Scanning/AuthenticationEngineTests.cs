using System.Net;
using MimeKit;
using Postern.Core.Authentication;
using Postern.Core.Policy;
using Postern.Core.Scanning;
using Postern.Core.Tests.Authentication;

namespace Postern.Core.Tests.Scanning;

public sealed class AuthenticationEngineTests
{
    private const string ExchangeOnline = "40.107.22.51";

    private static async Task<IReadOnlyList<Finding>> ScanAsync(MimeMessage message, InMemoryDnsResolver dns, string client)
    {
        var engine = new AuthenticationEngine(new AuthenticationChecker(dns), AuthenticationScenario.AuthservId);
        return await engine.ScanAsync(ScanContexts.For(message, mailFrom: "alice@fabrikam.test", client: client), CancellationToken.None);
    }

    private static Verdict DefaultVerdict(IReadOnlyList<Finding> findings, MimeMessage message)
    {
        var context = ScanContexts.For(message);
        return new PolicyEvaluator([]).Evaluate(context, findings, context.Envelope.Recipients[0]);
    }

    /// <summary>fabrikam.test's DNS with its SPF record replaced.</summary>
    private static InMemoryDnsResolver DnsWithSpf(string spf)
    {
        var dns = new InMemoryDnsResolver();
        foreach (var (name, value) in AuthenticationScenario.Instance.Records)
            dns.AddTxt(name, name == "fabrikam.test" ? spf : value);
        return dns;
    }

    private static string FrontEnd(string client) =>
        $"from mail.fabrikam.test ({client}) by AM4PEPF00027A6C.mail.protection.outlook.com (10.167.16.90) with Microsoft SMTP Server " +
        "(version=TLS1_3, cipher=TLS_AES_256_GCM_SHA384) id 15.20.7452.22 via Frontend Transport; Mon, 1 Apr 2024 10:00:00 +0000";

    private const string InternalHop =
        "from AM4PEPF00027A6C.eurprd04.prod.outlook.com (2603:10a6:20b:4a8:cafe::35) by DB9PR04MB8409.eurprd04.prod.outlook.com " +
        "(2603:10a6:10:2c0::9) with Microsoft SMTP Server id 15.20.7409.41; Mon, 1 Apr 2024 10:00:01 +0000";

    [Fact]
    public async Task A_spoofed_message_gives_a_dmarc_finding_of_its_own_kind_besides_the_spf_one()
    {
        var message = AuthenticationScenario.Instance.SignedBySender();
        message.Headers.Remove(HeaderId.DkimSignature);

        var findings = await ScanAsync(message, AuthenticationScenario.Instance.Dns(), "203.0.113.66");

        var dmarc = Assert.Single(findings, f => f.Kind == FindingKinds.Dmarc);
        Assert.Equal("dmarc=fail", dmarc.Subject);
        Assert.Contains("DMARC fail for fabrikam.test (policy reject)", dmarc.Reason);
        Assert.Equal("spf=fail", Assert.Single(findings, f => f.Kind == FindingKinds.Spf).Subject);
        Assert.DoesNotContain(findings, f => f.Kind == FindingKinds.Authentication);
    }

    [Fact]
    public async Task An_spf_softfail_is_a_finding_that_does_not_look_like_a_dmarc_failure()
    {
        // DKIM passes and aligns, so DMARC passes: only SPF has something to say.
        var findings = await ScanAsync(AuthenticationScenario.Instance.SignedBySender(), DnsWithSpf("v=spf1 ~all"), "203.0.113.66");

        var spf = Assert.Single(findings);
        Assert.Equal((FindingKinds.Spf, "spf=softfail"), (spf.Kind, spf.Subject));
        Assert.Contains("from 203.0.113.66", spf.Reason);
    }

    [Fact]
    public async Task A_broken_dkim_signature_has_its_own_kind()
    {
        var message = AuthenticationScenario.Instance.SignedBySender();
        message.Subject = "Quarterly report (edited on the way)";

        var findings = await ScanAsync(AuthenticationScenario.Reload(message), AuthenticationScenario.Instance.Dns(), AuthenticationScenario.SenderIp.ToString());

        Assert.Equal("dkim=fail", Assert.Single(findings, f => f.Kind == FindingKinds.Dkim).Subject);
        Assert.DoesNotContain(findings, f => f.Kind is FindingKinds.Dmarc or FindingKinds.Spf); // SPF passes and aligns
    }

    [Fact]
    public async Task The_default_policy_still_delivers_mail_that_fails_authentication()
    {
        var message = AuthenticationScenario.Instance.SignedBySender();
        message.Headers.Remove(HeaderId.DkimSignature);
        var findings = await ScanAsync(message, AuthenticationScenario.Instance.Dns(), "203.0.113.66");
        Assert.NotEmpty(findings);

        var verdict = DefaultVerdict(findings, message);
        Assert.Equal((VerdictAction.Deliver, "default"), (verdict.Action, verdict.Rule));
    }

    [Theory]
    [InlineData("192.0.2.10")]
    [InlineData("2001:db8::25")]
    public void The_original_client_is_the_address_exchange_onlines_front_end_received_from(string client)
    {
        var message = AuthenticationScenario.Instance.SignedBySender();
        message.Headers.Insert(0, new Header(HeaderId.Received, FrontEnd(client)));
        message.Headers.Insert(0, new Header(HeaderId.Received, InternalHop));

        Assert.Equal(IPAddress.Parse(client), AuthenticationEngine.OriginalClient(message));
    }

    [Fact]
    public void A_front_end_line_forged_below_the_real_one_does_not_choose_the_original_client()
    {
        var message = AuthenticationScenario.Instance.SignedBySender();
        message.Headers.Add(new Header(HeaderId.Received, FrontEnd("192.0.2.10"))); // written by the sender, so older
        message.Headers.Insert(0, new Header(HeaderId.Received, FrontEnd("203.0.113.66")));

        Assert.Equal(IPAddress.Parse("203.0.113.66"), AuthenticationEngine.OriginalClient(message));
    }

    [Fact]
    public void Without_an_exchange_online_front_end_line_there_is_no_original_client()
    {
        var message = AuthenticationScenario.Instance.SignedBySender();
        message.Headers.Insert(0, new Header(HeaderId.Received, InternalHop));
        message.Headers.Insert(0, new Header(HeaderId.Received, "from mail.fabrikam.test (192.0.2.10) by mx.example.net with ESMTPS; Mon, 1 Apr 2024 10:00:00 +0000"));

        Assert.Null(AuthenticationEngine.OriginalClient(message));
    }

    [Fact]
    public async Task Spf_is_judged_for_the_original_client_not_for_exchange_online()
    {
        var message = AuthenticationScenario.Instance.SignedBySender();
        message.Headers.Insert(0, new Header(HeaderId.Received, FrontEnd(AuthenticationScenario.SenderIp.ToString())));

        Assert.Empty(await ScanAsync(message, AuthenticationScenario.Instance.Dns(), ExchangeOnline));

        message.Headers.RemoveAll(HeaderId.Received);
        var spf = Assert.Single(await ScanAsync(message, AuthenticationScenario.Instance.Dns(), ExchangeOnline));
        Assert.Equal((FindingKinds.Spf, "spf=fail"), (spf.Kind, spf.Subject));
        Assert.Contains(ExchangeOnline, spf.Reason);
    }
}
