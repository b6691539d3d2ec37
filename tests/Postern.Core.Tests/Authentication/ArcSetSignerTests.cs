using System.Text;
using MimeKit;
using MimeKit.Cryptography;
using Postern.Core.Authentication;
using Postern.Core.Spool;

namespace Postern.Core.Tests.Authentication;

/// <summary>
/// Postern writes its ARC sets itself (native SHA-256 and RSA, canonicalization shared with its verifier). Its own
/// verifier sharing that code could not catch a mistake common to both, so here MimeKit's verifier, independent of
/// it, judges the chain; python3-dkim judges it in <see cref="PythonDkimInteropTests"/>.
/// </summary>
public sealed class ArcSetSignerTests
{
    private static readonly AuthenticationScenario Scenario = AuthenticationScenario.Instance;

    [Fact]
    public async Task Two_hops_of_postern_seals_verify_with_mimekit_and_every_line_is_short()
    {
        var raw = RawMessage.Parse(AuthenticationScenario.Wire(Scenario.SignedBySender()));
        var dkim = new AuthenticationMethodResult("dkim", "pass");
        var first = await Scenario.Sealer().SealAsync(raw, [dkim]);
        Assert.True(first.Sealed && first.ChainValidation == "none", first.Reason);
        var twice = RawMessage.Parse(raw.ToArray());
        var second = await Scenario.Sealer().SealAsync(twice, [new AuthenticationMethodResult("arc", "pass"), dkim]);
        Assert.True(second.Sealed && second.Instance == 2 && second.ChainValidation == "pass", second.Reason);

        var wire = twice.ToArray();
        var verdict = await new ArcVerifier(new DnsDkimKeyLocator(Scenario.Dns())).VerifyAsync(MimeMessage.Load(new MemoryStream(wire)));
        Assert.True(verdict.Chain == ArcSignatureValidationResult.Pass, $"MimeKit: {verdict.Chain} ({verdict.ChainErrors})");
        var text = Encoding.UTF8.GetString(wire);
        var header = text[..text.IndexOf("\r\n\r\n", StringComparison.Ordinal)];
        Assert.All(header.Split("\r\n").Where(l => l.StartsWith("ARC-", StringComparison.Ordinal) || l.StartsWith('\t')),
            line => Assert.True(line.Length <= 78, $"{line.Length} characters: {line}"));
        Assert.Equal(2, header.Split("\r\n").Count(l => l.StartsWith("ARC-Seal:", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_changed_body_or_signed_header_breaks_the_message_signature_for_mimekit()
    {
        var raw = RawMessage.Parse(AuthenticationScenario.Wire(Scenario.SignedBySender()));
        await Scenario.Sealer().SealAsync(raw, [new AuthenticationMethodResult("dkim", "pass")]);
        var wire = Encoding.UTF8.GetString(raw.ToArray());
        var verifier = new ArcVerifier(new DnsDkimKeyLocator(Scenario.Dns()));

        foreach (var changed in new[] { wire.Replace("numbers are attached", "numbers are attacked"), wire.Replace("Subject: Quarterly report", "Subject: Quarterly rep0rt") })
        {
            Assert.NotEqual(wire, changed);
            var verdict = await verifier.VerifyAsync(MimeMessage.Load(new MemoryStream(Encoding.UTF8.GetBytes(changed))));
            Assert.Equal(ArcSignatureValidationResult.Fail, verdict.Chain);
            Assert.True(verdict.ChainErrors.HasFlag(ArcValidationErrors.MessageSignatureValidationFailed), verdict.ChainErrors.ToString());
        }
    }
}
