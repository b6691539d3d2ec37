using System.Net;
using Postern.Core.Authentication;

namespace Postern.Core.Tests.Authentication;

/// <summary>
/// The OpenSPF RFC 7208 suite (openspf-pyspf/test/rfc7208-tests.yml), all 203 tests, driven the way pyspf's
/// own driver drives it: zonedata served from memory, default explanation "DEFAULT".
/// </summary>
public sealed class SpfConformanceTests
{
    private static readonly Lazy<IReadOnlyDictionary<string, SpfSuiteCase>> Cases = new(() => SpfSuiteCase.Load("rfc7208-tests.yml"));

    public static TheoryData<string> CaseIds()
    {
        var data = new TheoryData<string>();
        foreach (var id in Cases.Value.Keys.Order(StringComparer.Ordinal))
            data.Add(id);
        return data;
    }

    private static readonly Lazy<IReadOnlyDictionary<string, SpfSuiteCase>> Rfc4408Cases = new(() => SpfSuiteCase.Load("rfc4408-tests.yml"));

    public static TheoryData<string> Rfc4408CaseIds()
    {
        var data = new TheoryData<string>();
        foreach (var id in Rfc4408Cases.Value.Keys.Order(StringComparer.Ordinal))
            data.Add(id);
        return data;
    }

    [Fact]
    public void The_suite_has_203_tests() => Assert.Equal(203, Cases.Value.Count);

    [Theory]
    [MemberData(nameof(CaseIds))]
    public async Task Rfc7208_suite(string id)
    {
        await RunAsync(Cases.Value[id]);
    }

    /// <summary>The older RFC 4408 edition of the suite (191 tests): not required, kept because it costs nothing and pins behaviour.</summary>
    [Theory]
    [MemberData(nameof(Rfc4408CaseIds))]
    public async Task Rfc4408_suite(string id)
    {
        await RunAsync(Rfc4408Cases.Value[id]);
    }

    private static async Task RunAsync(SpfSuiteCase test)
    {
        var id = test.Id;
        var checker = new SpfChecker(test.Zone, new SpfOptions { DefaultExplanation = "DEFAULT" });
        var result = await checker.CheckMailFromAsync(IPAddress.Parse(test.Host), test.MailFrom, test.Helo);

        Assert.True(test.Results.Contains(result.Keyword),
            $"{id}: expected {string.Join(" or ", test.Results)}, got {result.Keyword} (mechanism {result.Mechanism}, problem {result.Problem}) — {test.Description}");
        if (test.Explanation is not null)
            Assert.Equal(test.Explanation, result.Explanation);
    }
}

/// <summary>One test of the OpenSPF YAML suite with its scenario's zone.</summary>
internal sealed record SpfSuiteCase(
    string Id, string Helo, string Host, string MailFrom, IReadOnlyList<string> Results, string? Explanation, string Description,
    InMemoryDnsResolver Zone)
{
    public static IReadOnlyDictionary<string, SpfSuiteCase> Load(string file)
    {
        var cases = new Dictionary<string, SpfSuiteCase>(StringComparer.Ordinal);
        foreach (var scenario in ConformanceData.LoadYamlDocuments("openspf-pyspf", "test", file))
        {
            var description = scenario.Str("description") ?? "";
            var zone = scenario.Map("zonedata");
            foreach (var (id, value) in scenario.Map("tests")!)
            {
                var test = (IReadOnlyDictionary<string, object>)value;
                var results = test["result"] switch
                {
                    List<object> list => list.Cast<string>().ToArray(),
                    var single => [(string)single],
                };
                // Each test gets its own zone: the resolver records queries.
                cases.Add(id, new SpfSuiteCase(id, test.Str("helo") ?? "", test.Str("host")!, test.Str("mailfrom") ?? "",
                    results, test.Str("explanation"), $"{description}: {test.Str("description")}", BuildZone(zone)));
            }
        }
        return cases;
    }

    /// <summary>
    /// Zonedata as pyspf's testspf.py serves it: unlisted names are NXDOMAIN, TXT lists are the character-strings
    /// of one record, SPF (type 99) records stand in for TXT when a name has no TXT entry, "TXT: NONE" means none,
    /// and TIMEOUT makes every type not listed time out.
    /// </summary>
    private static InMemoryDnsResolver BuildZone(IReadOnlyDictionary<string, object>? zonedata)
    {
        var zone = new InMemoryDnsResolver();
        if (zonedata is null)
            return zone;
        foreach (var (name, recordsNode) in zonedata)
        {
            zone.AddEmptyName(name);
            var records = (List<object>)recordsNode;
            var hasTxt = records.OfType<IReadOnlyDictionary<string, object>>().Any(r => r.ContainsKey("TXT"));
            foreach (var record in records)
            {
                if (record is "TIMEOUT")
                {
                    zone.AddTimeout(name);
                    continue;
                }
                var (type, value) = ((IReadOnlyDictionary<string, object>)record).Single();
                switch (type)
                {
                    case "A":
                    case "AAAA":
                        zone.AddAddress(name, IPAddress.Parse((string)value));
                        break;
                    case "MX":
                        var mx = (List<object>)value;
                        zone.AddMx(name, int.Parse((string)mx[0], System.Globalization.CultureInfo.InvariantCulture), (string)mx[1]);
                        break;
                    case "PTR":
                        zone.AddPtr(name, (string)value);
                        break;
                    case "CNAME":
                        zone.AddCname(name, (string)value);
                        break;
                    case "TXT" when value is "NONE":
                        break;
                    case "TXT":
                        zone.AddTxt(name, TxtText(value));
                        break;
                    case "SPF" when !hasTxt:
                        zone.AddTxt(name, TxtText(value));
                        break;
                    case "SPF":
                        break;
                    default:
                        throw new InvalidDataException($"zonedata type {type} at {name} is not understood");
                }
            }
        }
        return zone;
    }

    private static string TxtText(object value) =>
        value is List<object> strings ? string.Concat(strings.Cast<string>()) : (string)value;
}
