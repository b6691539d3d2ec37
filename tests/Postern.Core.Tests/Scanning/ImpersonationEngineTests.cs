using Postern.Core.Configuration;
using Postern.Core.Scanning;
using Postern.Core.Scanning.Engines;

namespace Postern.Core.Tests.Scanning;

public sealed class ImpersonationEngineTests
{
    private static readonly ImpersonationOptions Defaults = new();

    private static async Task<IReadOnlyList<Finding>> ScanAsync(string from, string? replyTo = null, string mailFrom = "bounce@example.net")
    {
        var message = ScanContexts.Message(from: from);
        if (replyTo is not null)
            message.ReplyTo.Add(MimeKit.MailboxAddress.Parse(replyTo));
        return await new ImpersonationEngine().ScanAsync(ScanContexts.For(message, mailFrom: mailFrom), CancellationToken.None);
    }

    [Theory]
    [InlineData("Jane Doe <jane.doe.ceo@gmail.com>")]
    [InlineData("\"jane  DOE\" <x@example.net>")]
    [InlineData("\"Doe, Jane\" <x@example.net>")]
    [InlineData("\"Jane Doe (CEO)\" <x@example.net>")]
    [InlineData("\"JaneDoe\" <x@example.net>")]
    [InlineData("\"J\u0430ne Doe\" <x@example.net>")] // Cyrillic а
    [InlineData("\"Jurgen Muller\" <x@example.net>")] // VIP is "Jürgen Müller"
    [InlineData("\"JÜRGEN MÜLLER\" <x@example.net>")]
    [InlineData("\"bjork\" <x@example.net>")]
    public async Task Flags_a_vip_name_on_an_outside_address(string from)
    {
        var findings = await ScanAsync(from);

        var finding = Assert.Single(findings);
        Assert.Equal(FindingKinds.DisplayNameImpersonation, finding.Kind);
        Assert.Equal(MimeKit.MailboxAddress.Parse(from).Address, finding.Subject);
    }

    [Theory]
    [InlineData("Jane Doe <jane.doe@contoso.com>")] // the real VIP (or a colleague with her name) inside the tenant
    [InlineData("Jane Doe <jane@sales.contoso.com>")] // tenant subdomain
    [InlineData("Jane Doe <jane@contoso.co.uk>")]
    [InlineData("Janet Doerr <janet@example.net>")]
    [InlineData("Jane <jane@example.net>")]
    [InlineData("Björkman Consulting <info@example.net>")]
    [InlineData("\"Doe\" <x@example.net>")]
    public async Task Leaves_tenant_senders_and_other_names_alone(string from)
    {
        Assert.Empty(await ScanAsync(from));
    }

    [Fact]
    public async Task Flags_a_display_name_showing_a_tenant_address()
    {
        var finding = Assert.Single(await ScanAsync("\"payroll@contoso.com\" <attacker@example.net>"));

        Assert.Equal(FindingKinds.DisplayNameImpersonation, finding.Kind);
        Assert.Contains("payroll@contoso.com", finding.Reason);
    }

    [Theory]
    [InlineData("c0ntoso.com", "homoglyph")]
    [InlineData("contoso.corn", "homoglyph")]
    [InlineData("xn--cntoso-wqf.com", "homoglyph")] // cоntoso.com with a Cyrillic о
    [InlineData("cóntoso.com", "homoglyph")]
    [InlineData("contoso-com.net", "embedded-domain")]
    [InlineData("contoso.com.login.example.net", "embedded-domain")]
    [InlineData("contoso.net", "other-suffix")]
    [InlineData("contoso.onmicrosoft.com", "other-suffix")]
    [InlineData("contosso.com", "edit-distance-1")]
    [InlineData("cnotoso.com", "edit-distance-1")]
    [InlineData("contos.co.uk", "edit-distance-1")]
    [InlineData("contoso-payroll.com", "embedded-name")]
    public void Finds_look_alikes_of_the_tenant_domains(string domain, string rule)
    {
        var found = LookAlikeDomains.Check(domain, ScanContexts.ContosoDomains, Defaults);

        Assert.NotNull(found);
        Assert.Equal(rule, found.Rule);
    }

    [Theory]
    [InlineData("contoso.com")]
    [InlineData("mail.contoso.com")]
    [InlineData("CONTOSO.CO.UK")]
    [InlineData("example.com")]
    [InlineData("fabrikam.com")]
    [InlineData("microsoft.com")]
    [InlineData("costco.com")] // distance 2, but "contoso" is too short for two edits
    [InlineData("contosoinc.com")] // no separator: an unrelated name
    public void Leaves_the_tenant_and_unrelated_domains_alone(string domain)
    {
        Assert.Null(LookAlikeDomains.Check(domain, ScanContexts.ContosoDomains, Defaults));
    }

    [Fact]
    public void Allows_two_edits_only_for_long_names()
    {
        string[] tenant = ["northwindtraders.com"];
        Assert.Equal("edit-distance-2", LookAlikeDomains.Check("nortwindtrader.com", tenant, Defaults)?.Rule);
        Assert.Null(LookAlikeDomains.Check("ab.com", ["ac.com"], Defaults));
        Assert.Null(LookAlikeDomains.Check("contoso.net", ScanContexts.ContosoDomains, new ImpersonationOptions { SameNameOtherSuffix = false }));
    }

    [Fact]
    public async Task Checks_from_reply_to_and_the_envelope_sender_once_per_domain()
    {
        var findings = await ScanAsync("Support <help@c0ntoso.com>", replyTo: "reply@contoso-com.net", mailFrom: "bounce@c0ntoso.com");

        Assert.Equal(2, findings.Count);
        Assert.All(findings, f => Assert.Equal(FindingKinds.LookAlikeDomain, f.Kind));
        Assert.Equal("c0ntoso.com", findings[0].Subject);
        Assert.StartsWith("From, envelope sender domain c0ntoso.com", findings[0].Reason);
        Assert.Equal("contoso-com.net", findings[1].Subject);
        Assert.StartsWith("Reply-To", findings[1].Reason);
    }

    [Fact]
    public async Task Gives_both_findings_when_a_vip_writes_from_a_look_alike()
    {
        var findings = await ScanAsync("Jane Doe <jane.doe@contoso-co.uk>");

        Assert.Contains(findings, f => f.Kind == FindingKinds.DisplayNameImpersonation);
        Assert.Contains(findings, f => f.Kind == FindingKinds.LookAlikeDomain && f.Subject == "contoso-co.uk");
    }

    [Fact]
    public void Measures_edit_distance_with_swaps()
    {
        Assert.Equal(0, LookAlikeDomains.EditDistance("contoso", "contoso"));
        Assert.Equal(1, LookAlikeDomains.EditDistance("contoso", "cnotoso"));
        Assert.Equal(1, LookAlikeDomains.EditDistance("contoso", "contosso"));
        Assert.Equal(2, LookAlikeDomains.EditDistance("contoso", "cntosoo"));
        Assert.Equal(3, LookAlikeDomains.EditDistance("contoso", "fabrikam", cap: 2));
    }
}
