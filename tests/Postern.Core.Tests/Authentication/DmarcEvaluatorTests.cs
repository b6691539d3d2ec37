using MimeKit;
using Postern.Core.Authentication;

namespace Postern.Core.Tests.Authentication;

/// <summary>
/// DMARC evaluation (RFC 7489). No public data-driven DMARC suite exists (see the conformance README), so
/// these cases are written from the RFC: record discovery, alignment modes, p/sp/pct and the error results.
/// </summary>
public sealed class DmarcEvaluatorTests
{
    private static SpfCheckResult Spf(SpfResult result, string domain) =>
        new(result, SpfIdentity.MailFrom, domain, "bounce@" + domain);

    private static DkimSignatureResult Dkim(DkimResult result, string domain) =>
        new(result, domain, "sel", null, "rsa-sha256", "abcdefgh");

    private static DmarcEvaluator Evaluator(InMemoryDnsResolver dns, int sample = 0) => new(dns, percentSample: () => sample);

    [Fact]
    public async Task Passes_on_relaxed_spf_alignment_with_a_subdomain_bounce_address()
    {
        var dns = new InMemoryDnsResolver().AddTxt("_dmarc.example.com", "v=DMARC1; p=reject");
        var result = await Evaluator(dns).EvaluateAsync("example.com", Spf(SpfResult.Pass, "bounces.example.com"), []);

        Assert.Equal(DmarcResult.Pass, result.Result);
        Assert.True(result.SpfAligned);
        Assert.Equal(DmarcPolicy.None, result.AppliedPolicy);
    }

    [Fact]
    public async Task Strict_spf_alignment_needs_the_exact_domain()
    {
        var dns = new InMemoryDnsResolver().AddTxt("_dmarc.example.com", "v=DMARC1; p=reject; aspf=s");
        var result = await Evaluator(dns).EvaluateAsync("example.com", Spf(SpfResult.Pass, "bounces.example.com"), []);

        Assert.Equal(DmarcResult.Fail, result.Result);
        Assert.Equal(DmarcPolicy.Reject, result.AppliedPolicy);
    }

    [Fact]
    public async Task Passes_on_an_aligned_dkim_signature_even_when_spf_fails()
    {
        var dns = new InMemoryDnsResolver().AddTxt("_dmarc.example.com", "v=DMARC1; p=quarantine; adkim=s");
        var result = await Evaluator(dns).EvaluateAsync("example.com", Spf(SpfResult.Fail, "example.com"),
            [Dkim(DkimResult.Pass, "esp.example.net"), Dkim(DkimResult.Pass, "example.com")]);

        Assert.Equal(DmarcResult.Pass, result.Result);
        Assert.True(result.DkimAligned);
        Assert.Equal("example.com", result.AlignedDkimDomain);
    }

    [Fact]
    public async Task A_passing_signature_from_another_organization_does_not_align()
    {
        var dns = new InMemoryDnsResolver().AddTxt("_dmarc.example.com", "v=DMARC1; p=reject");
        var result = await Evaluator(dns).EvaluateAsync("example.com", Spf(SpfResult.Pass, "esp.example.net"),
            [Dkim(DkimResult.Pass, "esp.example.net"), Dkim(DkimResult.Fail, "example.com")]);

        Assert.Equal(DmarcResult.Fail, result.Result);
        Assert.Contains("nothing aligned", result.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Relaxed_alignment_uses_the_public_suffix_list_not_the_last_two_labels()
    {
        // example.co.uk and other.co.uk share the last two labels but are different organizations.
        var dns = new InMemoryDnsResolver().AddTxt("_dmarc.example.co.uk", "v=DMARC1; p=reject");
        var result = await Evaluator(dns).EvaluateAsync("mail.example.co.uk", Spf(SpfResult.Pass, "other.co.uk"), [Dkim(DkimResult.Pass, "news.example.co.uk")]);

        Assert.Equal(DmarcResult.Pass, result.Result);
        Assert.False(result.SpfAligned);
        Assert.True(result.DkimAligned);
        Assert.Equal("example.co.uk", result.RecordDomain);
    }

    [Fact]
    public async Task A_subdomain_without_its_own_record_gets_the_organizational_sp_policy()
    {
        var dns = new InMemoryDnsResolver().AddTxt("_dmarc.example.com", "v=DMARC1; p=reject; sp=quarantine");
        var result = await Evaluator(dns).EvaluateAsync("news.example.com", Spf(SpfResult.Fail, "news.example.com"), []);

        Assert.Equal(DmarcResult.Fail, result.Result);
        Assert.Equal("example.com", result.RecordDomain);
        Assert.Equal(DmarcPolicy.Quarantine, result.RequestedPolicy);
    }

    [Fact]
    public async Task A_subdomain_with_its_own_record_uses_its_p_not_the_parent_sp()
    {
        var dns = new InMemoryDnsResolver()
            .AddTxt("_dmarc.example.com", "v=DMARC1; p=reject; sp=none")
            .AddTxt("_dmarc.news.example.com", "v=DMARC1; p=quarantine; sp=reject");
        var result = await Evaluator(dns).EvaluateAsync("news.example.com", null, []);

        Assert.Equal("news.example.com", result.RecordDomain);
        Assert.Equal(DmarcPolicy.Quarantine, result.AppliedPolicy);
    }

    [Theory]
    [InlineData(49, DmarcPolicy.Reject, false)]
    [InlineData(50, DmarcPolicy.Quarantine, true)]
    [InlineData(99, DmarcPolicy.Quarantine, true)]
    public async Task Pct_applies_the_policy_to_a_sample_and_the_next_milder_one_to_the_rest(int sample, DmarcPolicy applied, bool sampledOut)
    {
        var dns = new InMemoryDnsResolver().AddTxt("_dmarc.example.com", "v=DMARC1; p=reject; pct=50");
        var result = await Evaluator(dns, sample).EvaluateAsync("example.com", null, []);

        Assert.Equal(applied, result.AppliedPolicy);
        Assert.Equal(sampledOut, result.SampledOut);
    }

    [Fact]
    public async Task Quarantine_sampled_out_becomes_none()
    {
        var dns = new InMemoryDnsResolver().AddTxt("_dmarc.example.com", "v=DMARC1; p=quarantine; pct=0");
        Assert.Equal(DmarcPolicy.None, (await Evaluator(dns, 0).EvaluateAsync("example.com", null, [])).AppliedPolicy);
    }

    [Fact]
    public async Task No_record_anywhere_is_none()
    {
        var result = await Evaluator(new InMemoryDnsResolver()).EvaluateAsync("news.example.com", Spf(SpfResult.Pass, "news.example.com"), []);
        Assert.Equal(DmarcResult.None, result.Result);
        Assert.Equal("example.com", result.OrganizationalDomain);
    }

    [Fact]
    public async Task Dns_failure_is_a_temporary_error()
    {
        var dns = new InMemoryDnsResolver().AddTimeout("_dmarc.example.com");
        Assert.Equal(DmarcResult.TempError, (await Evaluator(dns).EvaluateAsync("example.com", null, [])).Result);
    }

    [Fact]
    public async Task Records_not_starting_with_v_DMARC1_are_ignored()
    {
        var dns = new InMemoryDnsResolver()
            .AddTxt("_dmarc.example.com", "p=reject; v=DMARC1")
            .AddTxt("_dmarc.example.com", "google-site-verification=abc");
        Assert.Equal(DmarcResult.None, (await Evaluator(dns).EvaluateAsync("example.com", null, [])).Result);
    }

    [Fact]
    public async Task Two_records_end_discovery_without_applying_dmarc()
    {
        var dns = new InMemoryDnsResolver()
            .AddTxt("_dmarc.example.com", "v=DMARC1; p=reject")
            .AddTxt("_dmarc.example.com", "v=DMARC1; p=none");
        var result = await Evaluator(dns).EvaluateAsync("example.com", null, []);
        Assert.Equal(DmarcResult.None, result.Result);
        Assert.Contains("2 DMARC records", result.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_invalid_p_without_rua_is_a_permanent_error()
    {
        var dns = new InMemoryDnsResolver().AddTxt("_dmarc.example.com", "v=DMARC1; p=bounce");
        Assert.Equal(DmarcResult.PermError, (await Evaluator(dns).EvaluateAsync("example.com", null, [])).Result);
    }

    [Fact]
    public async Task An_invalid_p_with_a_valid_rua_is_read_as_p_none()
    {
        var dns = new InMemoryDnsResolver().AddTxt("_dmarc.example.com", "v=DMARC1; p=bounce; rua=mailto:dmarc@example.com");
        var result = await Evaluator(dns).EvaluateAsync("example.com", null, []);
        Assert.Equal(DmarcResult.Fail, result.Result);
        Assert.Equal(DmarcPolicy.None, result.AppliedPolicy);
        Assert.True(result.Record!.PolicyFromReportingAddress);
    }

    [Fact]
    public void Parses_every_tag()
    {
        var record = DmarcRecord.TryParse(
            "v=DMARC1;p=quarantine; sp=reject ; pct=25; adkim=s; aspf=s; rua=mailto:a@example.com,mailto:b@example.net!10m; ruf=mailto:f@example.com; fo=1; x=ignored",
            out var problem)!;
        Assert.Null(problem);
        Assert.Equal(DmarcPolicy.Quarantine, record.Policy);
        Assert.Equal(DmarcPolicy.Reject, record.SubdomainPolicy);
        Assert.Equal(25, record.Percent);
        Assert.Equal(DmarcAlignment.Strict, record.DkimAlignment);
        Assert.Equal(DmarcAlignment.Strict, record.SpfAlignment);
        Assert.Equal(["mailto:a@example.com", "mailto:b@example.net!10m"], record.AggregateReportUris);
        Assert.Equal("1", record.FailureReportOptions);
    }

    [Fact]
    public async Task Several_from_domains_cannot_be_evaluated()
    {
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("A", "a@example.com"));
        message.From.Add(new MailboxAddress("B", "b@example.net"));
        var result = await Evaluator(new InMemoryDnsResolver()).EvaluateAsync(message, null, []);
        Assert.Equal(DmarcResult.PermError, result.Result);
    }
}
