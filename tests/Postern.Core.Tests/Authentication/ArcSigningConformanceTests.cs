using MimeKit;
using Postern.Core.Authentication;

namespace Postern.Core.Tests.Authentication;

/// <summary>
/// The ValiMail ARC signing suite (17 tests), sealed with Postern's <see cref="ArcSealer"/> (MimeKit's ArcSigner):
/// the given key, t= and h= list, the AAR built from the Authentication-Results with the srv-id ("AR
/// consolidation"), cv= from the incoming chain. Compared the way the upstream harness compares (whitespace
/// removed, split on ';', as sets) for the AAR, and tag by tag for the ARC-Seal and ARC-Message-Signature,
/// except b=: b= signs the header's own text, and MimeKit writes the tags in its own order (i, a, cv, d, s, t)
/// where the suite's generator writes them alphabetically, so the bits cannot match. Each b= is instead
/// verified by validating the sealed chain (and, in <see cref="PythonDkimInteropTests"/>, by python3-dkim).
/// </summary>
public sealed class ArcSigningConformanceTests
{
    private static readonly Lazy<IReadOnlyDictionary<string, ArcSigningCase>> Cases = new(ArcSigningCase.Load);

    public static TheoryData<string> CaseIds()
    {
        var data = new TheoryData<string>();
        foreach (var id in Cases.Value.Keys.Order(StringComparer.Ordinal))
            data.Add(id);
        return data;
    }

    [Fact]
    public void The_signing_suite_has_17_tests() => Assert.Equal(17, Cases.Value.Count);

    [Theory]
    [MemberData(nameof(CaseIds))]
    public async Task Signing_suite(string id)
    {
        var test = Cases.Value[id];
        var (message, outcome) = await SealAsync(test);

        if (test.ExpectedSeal.Length == 0)
        {
            Assert.False(outcome.Sealed, $"{id}: a set was added to a chain that had already failed");
            Assert.Equal(message.Headers.Count(h => h.Id == HeaderId.ArcSeal), ArcSuite.ParseMessage(test.Message).Headers.Count(h => h.Id == HeaderId.ArcSeal));
            return;
        }

        Assert.True(outcome.Sealed, $"{id}: not sealed ({outcome.Reason})");
        Assert.Equal(HeaderId.ArcSeal, message.Headers[0].Id);
        Assert.Equal(HeaderId.ArcMessageSignature, message.Headers[1].Id);
        Assert.Equal(HeaderId.ArcAuthenticationResults, message.Headers[2].Id);
        Assert.Equal(Parts(test.ExpectedAar), Parts(message.Headers[2].Value));
        AssertTagsEqual(test.ExpectedAms, message.Headers[1].Value);
        AssertTagsEqual(test.ExpectedSeal, message.Headers[0].Value);

        // b= is checked by validating what was sealed, from the bytes that would go on the wire.
        var sealedCv = DkimTagListForTests.Parse(message.Headers[0].Value)["cv"];
        var chain = await new ArcChainVerifier(test.Zone).VerifyAsync(RoundTrip(message));
        Assert.True(chain.Result == (sealedCv == "fail" ? ArcResult.Fail : ArcResult.Pass), $"{id}: sealed chain validates as {chain.Keyword} ({chain.Reason})");
    }

    /// <summary>The suite stamps the chain status into the Authentication-Results; Postern's own validation must agree.</summary>
    [Theory]
    [MemberData(nameof(CaseIds))]
    public async Task The_stamped_arc_result_matches_postern_validation_of_the_incoming_chain(string id)
    {
        var test = Cases.Value[id];
        var message = ArcSuite.ParseMessage(test.Message);
        var stamped = ArcSealer.CollectResults(message, test.SrvId).FirstOrDefault(r => r.Method == "arc");
        var chain = await new ArcChainVerifier(test.Zone).VerifyAsync(message);
        if (stamped is null)
            Assert.Equal(ArcResult.Fail, chain.Result); // only no_additional_sig, whose newest seal says cv=fail
        else
            Assert.Equal(stamped.Result, chain.Keyword);
    }

    internal static async Task<(MimeMessage Message, ArcSealOutcome Outcome)> SealAsync(ArcSigningCase test)
    {
        var message = ArcSuite.ParseMessage(test.Message);
        var sealer = new ArcSealer(DkimSigningKey.FromPem(test.PrivateKey), test.Domain, test.Selector, test.SrvId, new ArcChainVerifier(test.Zone))
        {
            Headers = test.SignedHeaders,
            TimeProvider = new FixedClock(test.Timestamp),
        };
        var outcome = await sealer.SealAsync(message, ArcSealer.CollectResults(message, test.SrvId));
        return (message, outcome);
    }

    internal static MimeMessage RoundTrip(MimeMessage message)
    {
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        using var wire = new MemoryStream();
        message.WriteTo(options, wire);
        wire.Position = 0;
        return MimeMessage.Load(wire);
    }

    private static HashSet<string> Parts(string value) =>
        string.Concat(value.Where(c => !char.IsWhiteSpace(c))).Split(';', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);

    private static void AssertTagsEqual(string expected, string actual)
    {
        var want = DkimTagListForTests.Parse(expected);
        var got = DkimTagListForTests.Parse(actual);
        Assert.Equal(want.Keys.Order(StringComparer.Ordinal), got.Keys.Order(StringComparer.Ordinal));
        foreach (var (tag, value) in want.Where(t => t.Key != "b"))
            Assert.True(value == got[tag], $"{tag}=: expected '{value}', got '{got[tag]}'");
    }
}

internal sealed record ArcSigningCase(
    string Id, string Message, string Domain, string Selector, string PrivateKey, long Timestamp, IReadOnlyList<string> SignedHeaders, string SrvId,
    string ExpectedSeal, string ExpectedAms, string ExpectedAar, InMemoryDnsResolver Zone)
{
    public static IReadOnlyDictionary<string, ArcSigningCase> Load()
    {
        var cases = new Dictionary<string, ArcSigningCase>(StringComparer.Ordinal);
        foreach (var scenario in ConformanceData.LoadYamlDocuments("valimail-arc-test-suite", "tests", "arc-draft-sign-tests.yml"))
        {
            var records = ArcSuite.TxtRecords(scenario);
            foreach (var (id, value) in scenario.Map("tests")!)
            {
                var test = (IReadOnlyDictionary<string, object>)value;
                cases.Add(id, new ArcSigningCase(id, test.Str("message") ?? "", scenario.Str("domain")!, scenario.Str("sel")!, scenario.Str("privatekey")!,
                    long.Parse(test.Str("t")!, System.Globalization.CultureInfo.InvariantCulture), test.Str("sig-headers")!.Split(':'), test.Str("srv-id")!,
                    (test.Str("AS") ?? "").Trim(), (test.Str("AMS") ?? "").Trim(), (test.Str("AAR") ?? "").Trim(), ArcSuite.Zone(records)));
            }
        }
        return cases;
    }
}

/// <summary>A clock stopped at one Unix time, for fixed t= values.</summary>
internal sealed class FixedClock(long unixSeconds) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => DateTimeOffset.FromUnixTimeSeconds(unixSeconds);
}

/// <summary>Tag lists with whitespace removed from values, for comparing signatures in tests.</summary>
internal static class DkimTagListForTests
{
    public static Dictionary<string, string> Parse(string value) =>
        value.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(t => t.Split('=', 2))
            .ToDictionary(t => t[0].Trim(), t => string.Concat(t[1].Where(c => !char.IsWhiteSpace(c))), StringComparer.Ordinal);
}
