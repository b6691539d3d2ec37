using System.Text;
using MimeKit;
using Postern.Core.Authentication;

namespace Postern.Core.Tests.Authentication;

/// <summary>
/// The ValiMail ARC validation suite (171 tests): each message validated against the scenario's TXT
/// records, the chain result compared with cv. Messages are YAML literal blocks with LF line ends,
/// converted to CRLF with trailing whitespace kept; an empty cv (the newest seal already says cv=fail)
/// counts as fail, as RFC 8617 §5.2 and MimeKit's port of the suite read it.
/// </summary>
public sealed class ArcConformanceTests
{
    private static readonly Lazy<IReadOnlyDictionary<string, ArcValidationCase>> Cases = new(ArcValidationCase.Load);

    public static TheoryData<string> CaseIds()
    {
        var data = new TheoryData<string>();
        foreach (var id in Cases.Value.Keys.Order(StringComparer.Ordinal))
            data.Add(id);
        return data;
    }

    [Fact]
    public void The_validation_suite_has_171_tests() => Assert.Equal(171, Cases.Value.Count);

    [Theory]
    [MemberData(nameof(CaseIds))]
    public async Task Validation_suite(string id)
    {
        var test = Cases.Value[id];
        // cv_empty is a zero-byte message, which MimeKit cannot parse; an empty header block stands in for it.
        var message = test.Message.Length == 0 ? ArcSuite.EmptyMessage() : ArcSuite.ParseMessage(test.Message);
        var result = await new ArcChainVerifier(test.Zone).VerifyAsync(message);

        var expected = test.Cv.Length == 0 ? "fail" : test.Cv.ToLowerInvariant();
        Assert.True(expected == result.Keyword, $"{id}: expected cv={expected}, got {result.Keyword} ({result.Reason}) — {test.Description}");
    }
}

internal sealed record ArcValidationCase(string Id, string Message, string Cv, string Description, InMemoryDnsResolver Zone)
{
    public static IReadOnlyDictionary<string, ArcValidationCase> Load()
    {
        var cases = new Dictionary<string, ArcValidationCase>(StringComparer.Ordinal);
        foreach (var scenario in ConformanceData.LoadYamlDocuments("valimail-arc-test-suite", "tests", "arc-draft-validation-tests.yml"))
        {
            var records = ArcSuite.TxtRecords(scenario);
            foreach (var (id, value) in scenario.Map("tests")!)
            {
                var test = (IReadOnlyDictionary<string, object>)value;
                cases.Add(id, new ArcValidationCase(id, test.Str("message") ?? "", test.Str("cv") ?? "",
                    test.Str("description") ?? "", ArcSuite.Zone(records)));
            }
        }
        return cases;
    }
}

/// <summary>Shared handling of the ValiMail suite's YAML.</summary>
internal static class ArcSuite
{
    /// <summary>The scenario's txt-records (the key is spelled "txt-records"; the upstream README says "txt_records").</summary>
    public static IReadOnlyDictionary<string, string> TxtRecords(IReadOnlyDictionary<string, object> scenario)
    {
        var node = scenario.Map("txt-records") ?? scenario.Map("txt_records");
        return node is null
            ? new Dictionary<string, string>()
            : node.ToDictionary(c => c.Key, c => (string)c.Value);
    }

    public static InMemoryDnsResolver Zone(IReadOnlyDictionary<string, string> records)
    {
        var zone = new InMemoryDnsResolver();
        foreach (var (name, text) in records)
            zone.AddTxt(name, text);
        return zone;
    }

    public static MimeMessage EmptyMessage()
    {
        var message = new MimeMessage();
        message.Headers.Clear();
        return message;
    }

    /// <summary>The YAML block as a message: LF turned into CRLF, every other byte kept (trailing spaces are part of some tests).</summary>
    public static MimeMessage ParseMessage(string yamlBlock)
    {
        var crlf = yamlBlock.Replace("\r\n", "\n", StringComparison.Ordinal).Replace("\n", "\r\n", StringComparison.Ordinal);
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(crlf));
        return MimeMessage.Load(stream);
    }
}
