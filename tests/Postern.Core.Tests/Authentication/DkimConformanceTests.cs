using System.Text.Json;
using MimeKit;
using Postern.Core.Authentication;

namespace Postern.Core.Tests.Authentication;

/// <summary>
/// The pre-signed DKIM vectors of the conformance corpus (dkimpy-tests and mimekit-testdata
/// presigned-vectors.json): each message verified against the DNS records listed for it, one expected result
/// per DKIM-Signature in header order. The vectors were checked with dkimpy, whose verify() only says
/// pass or not, so an expected "fail" accepts any result other than pass; the tests below pin which one.
/// </summary>
public sealed class DkimConformanceTests
{
    public static TheoryData<string, int> Vectors()
    {
        var data = new TheoryData<string, int>();
        foreach (var suite in new[] { "dkimpy-tests", "mimekit-testdata" })
        {
            for (var i = 0; i < LoadCases(suite).Count; i++)
                data.Add(suite, i);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Vectors))]
    public async Task Presigned_vector(string suite, int index)
    {
        var vector = LoadCases(suite)[index];
        var results = await VerifyAsync(vector);

        Assert.Equal(vector.Expect.Count, results.Count);
        for (var i = 0; i < results.Count; i++)
        {
            if (vector.Expect[i] == "pass")
                Assert.True(results[i].Result == DkimResult.Pass, $"{vector.File} signature {i + 1}: {results[i].Keyword} ({results[i].Reason})");
            else
                Assert.NotEqual(DkimResult.Pass, results[i].Result);
        }
    }

    [Fact]
    public async Task A_corrupted_public_key_is_a_permanent_error_not_a_crash()
    {
        var vector = LoadCases("dkimpy-tests").Single(v => v.Note?.Contains("defective", StringComparison.Ordinal) == true);
        var result = Assert.Single(await VerifyAsync(vector));
        Assert.Equal(DkimResult.PermError, result.Result);
    }

    [Fact]
    public async Task A_signing_domain_with_a_parenthesis_is_refused_before_dns()
    {
        var vector = LoadCases("dkimpy-tests").Single(v => v.File == "test.message.baddomain");
        var result = Assert.Single(await VerifyAsync(vector));
        Assert.Equal(DkimResult.PermError, result.Result);
        Assert.Contains("not a valid domain", result.Reason, StringComparison.Ordinal);
    }

    internal static string DkimpyData(string file) => ConformanceData.PathOf("dkimpy-tests", "dkim", "tests", "data", file);

    private static async Task<IReadOnlyList<DkimSignatureResult>> VerifyAsync(PresignedVector vector)
    {
        var dns = new InMemoryDnsResolver();
        foreach (var (name, txt) in vector.Dns)
            dns.AddTxt(name, txt);
        var message = await MimeMessage.LoadAsync(vector.Path);
        return await new DkimChecker(dns).VerifyAsync(message);
    }

    private static IReadOnlyList<PresignedVector> LoadCases(string suite)
    {
        using var json = JsonDocument.Parse(ConformanceData.ReadText(suite, "presigned-vectors.json"));
        var baseDir = suite == "dkimpy-tests" ? ConformanceData.PathOf(suite, "dkim", "tests", "data") : ConformanceData.PathOf(suite);
        return json.RootElement.GetProperty("cases").EnumerateArray().Select(c => new PresignedVector(
            c.GetProperty("file").GetString()!,
            Path.Combine(baseDir, c.GetProperty("file").GetString()!),
            c.GetProperty("dns").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!),
            c.GetProperty("expect").EnumerateArray().Select(e => e.GetString()!).ToArray(),
            c.TryGetProperty("note", out var note) ? note.GetString() : null)).ToArray();
    }

    private sealed record PresignedVector(string File, string Path, IReadOnlyDictionary<string, string> Dns, IReadOnlyList<string> Expect, string? Note);
}
