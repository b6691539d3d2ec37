using MimeKit;
using MimeKit.Cryptography;
using Postern.Core.Authentication;

namespace Postern.Core.Tests.Authentication;

/// <summary>
/// Issue 4, test 3: Postern's DKIM signatures and ARC seals verify with an independent implementation,
/// Debian's python3-dkim, offline (keys handed to its dnsfunc). Everything is verified in one python run.
/// </summary>
public sealed class PythonDkimInteropTests : IClassFixture<PythonDkimInteropTests.Verdicts>
{
    private readonly Verdicts _verdicts;

    public PythonDkimInteropTests(Verdicts verdicts) => _verdicts = verdicts;

    [PythonDkimFact]
    public void Outbound_rsa_and_ed25519_dkim_signatures_verify() =>
        Assert.Equal([true, true], _verdicts.Results["outbound"].Dkim);

    [PythonDkimFact]
    public void The_first_arc_seal_verifies_and_the_senders_dkim_signature_survives()
    {
        var verdict = _verdicts.Results["inbound-first-hop"];
        Assert.True(verdict.Arc == "pass", verdict.Comment);
        Assert.Equal([true], verdict.Dkim);
    }

    [PythonDkimFact]
    public void A_seal_added_to_an_existing_chain_verifies()
    {
        var verdict = _verdicts.Results["inbound-second-hop"];
        Assert.True(verdict.Arc == "pass", verdict.Comment);
    }

    [PythonDkimFact]
    public void Every_seal_of_the_arc_signing_suite_verifies()
    {
        Assert.Equal(16, _verdicts.SuiteExpectations.Count); // 17 minus no_additional_sig, which must not be sealed
        foreach (var (id, sealedCv) in _verdicts.SuiteExpectations)
        {
            var verdict = _verdicts.Results["suite-" + id];
            if (sealedCv == "fail")
            {
                // A cv=fail seal ends the chain; dkimpy still checks it, newest set first.
                Assert.True(verdict.Arc == "terminated", $"{id}: python3-dkim says {verdict.Arc} ({verdict.Comment})");
                Assert.True(verdict.Sets[0].SealValid && verdict.Sets[0].MessageSignatureValid, $"{id}: python3-dkim rejects Postern's cv=fail set");
            }
            else
            {
                Assert.True(verdict.Arc == "pass", $"{id}: python3-dkim says {verdict.Arc} ({verdict.Comment})");
            }
        }
    }

    /// <summary>Builds every message once and runs python3-dkim once, the first time a test asks.</summary>
    public sealed class Verdicts
    {
        private readonly Lazy<(IReadOnlyDictionary<string, PythonVerdict> Results, IReadOnlyDictionary<string, string> Suite)> _run = new(Run);

        internal IReadOnlyDictionary<string, PythonVerdict> Results => _run.Value.Results;

        internal IReadOnlyDictionary<string, string> SuiteExpectations => _run.Value.Suite;

        private static (IReadOnlyDictionary<string, PythonVerdict>, IReadOnlyDictionary<string, string>) Run()
        {
            var world = AuthenticationScenario.Instance;
            var dns = new Dictionary<string, string>(world.Records, StringComparer.OrdinalIgnoreCase);
            var messages = new Dictionary<string, byte[]>(StringComparer.Ordinal);

            // Outbound: a tenant's message signed with an RSA and an Ed25519 key.
            var rsa = DkimSigningKey.FromPem(File.ReadAllText(DkimConformanceTests.DkimpyData("1024_testkey.key")));
            var ed = DkimSigningKey.GenerateEd25519();
            dns["rsa1._domainkey.contoso.test"] = rsa.DnsRecord("contoso.test", "rsa1").Value;
            dns["ed1._domainkey.contoso.test"] = ed.DnsRecord("contoso.test", "ed1").Value;
            var outbound = new MimeMessage();
            outbound.From.Add(new MailboxAddress("Bob", "bob@contoso.test"));
            outbound.To.Add(new MailboxAddress("Alice", "alice@fabrikam.test"));
            outbound.Cc.Add(new MailboxAddress("Carol", "carol@fabrikam.test"));
            outbound.Subject = "Re: Quarterly report — ünïcödé subject";
            outbound.MessageId = "reply-1@contoso.test";
            outbound.Body = new TextPart("plain") { Text = "Thanks Alice.\n\nTrailing spaces here:   \n\n\n" };
            outbound.Prepare(EncodingConstraint.SevenBit);
            new DkimMessageSigner(ed, "contoso.test", "ed1").Sign(outbound);
            new DkimMessageSigner(rsa, "contoso.test", "rsa1").Sign(outbound);
            messages["outbound"] = AuthenticationScenario.Wire(outbound);

            // Inbound, first hop: what Postern checked goes into its seal.
            var inbound = world.SignedBySender();
            var report = new AuthenticationChecker(world.Dns()).CheckAsync(inbound, AuthenticationScenario.FromSender).GetAwaiter().GetResult();
            world.Sealer().SealAsync(inbound, report.ToAuthenticationResults(AuthenticationScenario.AuthservId).Results).GetAwaiter().GetResult();
            messages["inbound-first-hop"] = AuthenticationScenario.Wire(inbound);

            // Inbound, second hop: a chain someone else started (the suite's i1_base, sealed by example.org).
            var signingCases = ArcSigningCase.Load();
            var i1 = signingCases["i1_base"];
            foreach (var (name, value) in ArcSuite.TxtRecords(ArcSuiteScenario(i1)))
                dns[name] = value;
            var secondHop = ArcSuite.ParseMessage(i1.Message);
            var verifier = new ArcChainVerifier(i1.Zone);
            var incoming = verifier.VerifyAsync(secondHop).GetAwaiter().GetResult();
            new ArcSealer(world.ArcKey, AuthenticationScenario.ArcDomain, AuthenticationScenario.ArcSelector, AuthenticationScenario.AuthservId)
                .SealAsync(secondHop, [new AuthenticationMethodResult("arc", incoming.Keyword)]).GetAwaiter().GetResult();
            messages["inbound-second-hop"] = AuthenticationScenario.Wire(secondHop);

            // The signing suite, as sealed by Postern.
            var suite = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var test in signingCases.Values)
            {
                var (message, outcome) = ArcSigningConformanceTests.SealAsync(test).GetAwaiter().GetResult();
                if (!outcome.Sealed)
                    continue;
                messages["suite-" + test.Id] = AuthenticationScenario.Wire(message);
                suite[test.Id] = outcome.ChainValidation;
            }

            return (PythonDkim.Verify(dns, messages), suite);
        }

        private static IReadOnlyDictionary<string, object> ArcSuiteScenario(ArcSigningCase test) =>
            ConformanceData.LoadYamlDocuments("valimail-arc-test-suite", "tests", "arc-draft-sign-tests.yml")
                .First(s => s.Map("tests")!.ContainsKey(test.Id));
    }
}
