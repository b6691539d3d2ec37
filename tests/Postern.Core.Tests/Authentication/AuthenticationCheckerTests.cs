using System.Net;
using MimeKit;
using MimeKit.Cryptography;
using Postern.Core.Authentication;

namespace Postern.Core.Tests.Authentication;

public sealed class AuthenticationCheckerTests
{
    [Fact]
    public async Task A_well_authenticated_message_passes_spf_dkim_and_dmarc()
    {
        var world = AuthenticationScenario.Instance;
        var report = await new AuthenticationChecker(world.Dns()).CheckAsync(world.SignedBySender(), AuthenticationScenario.FromSender);

        Assert.Equal(SpfResult.Pass, report.Spf.Result);
        Assert.Equal(SpfIdentity.MailFrom, report.Spf.Identity);
        Assert.Equal(SpfResult.None, report.HeloSpf!.Result); // mail.fabrikam.test publishes no SPF
        Assert.Equal(DkimResult.Pass, Assert.Single(report.Dkim).Result);
        Assert.Equal(ArcResult.None, report.Arc.Result);
        Assert.Equal(DmarcResult.Pass, report.Dmarc.Result);
        Assert.True(report.Dmarc.SpfAligned && report.Dmarc.DkimAligned);
    }

    [Fact]
    public async Task A_spoofed_message_fails_dmarc_with_the_reject_policy()
    {
        var world = AuthenticationScenario.Instance;
        var message = world.SignedBySender();
        message.Headers.Remove(HeaderId.DkimSignature);
        var report = await new AuthenticationChecker(world.Dns()).CheckAsync(message,
            new SmtpIdentity(IPAddress.Parse("203.0.113.66"), "spoofer.example", "alice@fabrikam.test"));

        Assert.Equal(SpfResult.Fail, report.Spf.Result);
        Assert.Empty(report.Dkim);
        Assert.Equal(DmarcResult.Fail, report.Dmarc.Result);
        Assert.Equal(DmarcPolicy.Reject, report.Dmarc.AppliedPolicy);
    }

    [Fact]
    public async Task A_null_sender_is_checked_as_postmaster_at_the_helo_name()
    {
        var world = AuthenticationScenario.Instance;
        var dns = world.Dns().AddTxt("mail.fabrikam.test", "v=spf1 ip4:192.0.2.10 -all");
        var report = await new AuthenticationChecker(dns).CheckAsync(world.SignedBySender(),
            new SmtpIdentity(AuthenticationScenario.SenderIp, "mail.fabrikam.test", ""));

        Assert.Equal(SpfResult.Pass, report.Spf.Result);
        Assert.Equal(SpfIdentity.Helo, report.Spf.Identity);
        Assert.Equal("postmaster@mail.fabrikam.test", report.Spf.Sender);
        Assert.Null(report.HeloSpf);
    }

    [Fact]
    public async Task The_authentication_results_header_names_every_method_with_its_identifiers()
    {
        var world = AuthenticationScenario.Instance;
        var message = world.SignedBySender();
        var report = await new AuthenticationChecker(world.Dns()).CheckAsync(message, AuthenticationScenario.FromSender);
        var value = new AuthenticationResultsBuilder("postern.example").Add(report).ToHeaderValue();

        Assert.StartsWith("postern.example; arc=none; spf=pass smtp.mailfrom=", value, StringComparison.Ordinal);
        Assert.Contains("alice@fabrikam.test", value, StringComparison.Ordinal);
        Assert.Contains("dkim=pass (2048-bit key) header.d=fabrikam.test header.s=s2048 header.b=", value, StringComparison.Ordinal);
        Assert.Contains("dmarc=pass (p=reject dis=none) header.from=fabrikam.test", value, StringComparison.Ordinal);

        // What MimeKit writes, MimeKit (and so any RFC 8601 reader) reads back.
        Assert.True(AuthenticationResults.TryParse(System.Text.Encoding.ASCII.GetBytes(value), out var parsed));
        Assert.Equal(["arc", "spf", "spf", "dkim", "dmarc"], parsed.Results.Select(r => r.Method));
    }

    [Fact]
    public void Forged_results_claiming_postern_are_removed_and_others_kept()
    {
        var message = AuthenticationScenario.Instance.SignedBySender();
        message.Headers.Insert(0, new Header(HeaderId.AuthenticationResults, "postern.example; spf=pass smtp.mailfrom=ceo@contoso.test"));
        message.Headers.Insert(0, new Header(HeaderId.AuthenticationResults, "mx.microsoft.com; spf=fail smtp.mailfrom=fabrikam.test"));

        Assert.Equal(1, AuthenticationResultsBuilder.RemoveForged(message, "postern.example"));
        Assert.Single(message.Headers, h => h.Id == HeaderId.AuthenticationResults);
    }

    [Fact]
    public async Task Postern_seals_what_it_checked_and_the_seal_validates()
    {
        var world = AuthenticationScenario.Instance;
        var message = world.SignedBySender();
        var report = await new AuthenticationChecker(world.Dns()).CheckAsync(message, AuthenticationScenario.FromSender);
        var outcome = await world.Sealer().SealAsync(message, report.ToAuthenticationResults(AuthenticationScenario.AuthservId).Results);

        Assert.True(outcome.Sealed);
        Assert.Equal(1, outcome.Instance);
        Assert.Equal("none", outcome.ChainValidation);
        var aar = message.Headers[HeaderId.ArcAuthenticationResults] ?? throw new InvalidOperationException("no AAR");
        Assert.StartsWith("i=1; postern.example; arc=none; spf=pass", aar.Replace("\r\n", "", StringComparison.Ordinal).Replace("\t", " ", StringComparison.Ordinal).Trim(), StringComparison.Ordinal);

        var received = AuthenticationScenario.Reload(message);
        var chain = await new ArcChainVerifier(world.Dns()).VerifyAsync(received);
        Assert.Equal(ArcResult.Pass, chain.Result);
        var set = Assert.Single(chain.Sets);
        Assert.Equal(AuthenticationScenario.ArcDomain, set.Domain);
        Assert.Contains(set.AuthenticationResults!.Results, r => r.Method == "dmarc" && r.Result == "pass");
        Assert.Equal(DkimResult.Pass, Assert.Single(await new DkimChecker(world.Dns()).VerifyAsync(received)).Result);
    }

    [Fact]
    public async Task A_second_seal_carries_cv_pass_and_a_seal_over_a_broken_chain_carries_cv_fail()
    {
        var world = AuthenticationScenario.Instance;
        var message = world.SignedBySender();
        await world.Sealer().SealAsync(message, [new AuthenticationMethodResult("spf", "pass")]);
        message = AuthenticationScenario.Reload(message);

        var second = await world.Sealer().SealAsync(AuthenticationScenario.Reload(message), [new AuthenticationMethodResult("spf", "pass")]);
        Assert.Equal((true, 2, "pass"), (second.Sealed, second.Instance, second.ChainValidation));

        message.Subject = "Altered on the way";
        var broken = AuthenticationScenario.Reload(message);
        var third = await world.Sealer().SealAsync(broken, [new AuthenticationMethodResult("spf", "pass")]);
        Assert.Equal((true, 2, "fail"), (third.Sealed, third.Instance, third.ChainValidation));

        // After a cv=fail seal nobody adds another set (RFC 8617 §5.1.2).
        var fourth = await world.Sealer().SealAsync(AuthenticationScenario.Reload(broken), [new AuthenticationMethodResult("spf", "pass")]);
        Assert.False(fourth.Sealed);
    }

    [Fact]
    public async Task A_message_without_from_is_still_sealed()
    {
        var world = AuthenticationScenario.Instance;
        var message = world.SignedBySender();
        message.Headers.RemoveAll(HeaderId.From);
        var outcome = await world.Sealer().SealAsync(message, [new AuthenticationMethodResult("spf", "none")]);

        Assert.True(outcome.Sealed);
        Assert.Equal(ArcResult.Pass, (await new ArcChainVerifier(world.Dns()).VerifyAsync(AuthenticationScenario.Reload(message))).Result);
    }

    [Fact]
    public async Task Sealing_a_chain_without_an_arc_result_or_a_verifier_is_refused()
    {
        var world = AuthenticationScenario.Instance;
        var message = world.SignedBySender();
        await world.Sealer().SealAsync(message, [new AuthenticationMethodResult("spf", "pass")]);
        var sealer = new ArcSealer(world.ArcKey, AuthenticationScenario.ArcDomain, AuthenticationScenario.ArcSelector, AuthenticationScenario.AuthservId);

        await Assert.ThrowsAsync<InvalidOperationException>(() => sealer.SealAsync(message, [new AuthenticationMethodResult("spf", "pass")]));
    }

    [Fact]
    public async Task An_arc_key_lookup_that_times_out_is_reported_as_temporary()
    {
        var world = AuthenticationScenario.Instance;
        var message = world.SignedBySender();
        await world.Sealer().SealAsync(message, [new AuthenticationMethodResult("spf", "pass")]);
        var dns = new InMemoryDnsResolver().AddTimeout($"{AuthenticationScenario.ArcSelector}._domainkey.{AuthenticationScenario.ArcDomain}");

        var chain = await new ArcChainVerifier(dns).VerifyAsync(AuthenticationScenario.Reload(message));
        Assert.Equal(ArcResult.Fail, chain.Result);
        Assert.True(chain.TemporaryFailure, chain.Reason);
    }
}
