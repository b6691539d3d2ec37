using System.Text.RegularExpressions;
using Postern.Core.Authentication;

namespace Postern.Core.Tests.Authentication;

/// <summary>
/// publicsuffix-list/tests/test_psl.txt: checkPublicSuffix(domain, registrable domain or null), run against the
/// list Postern embeds (the same commit as the test file). The commented-out "local" cases upstream are not
/// cases; checkPublicSuffix(null, null) is run as a null input.
/// </summary>
public sealed partial class PublicSuffixListTests
{
    public static TheoryData<int, string?, string?> Cases()
    {
        var data = new TheoryData<int, string?, string?>();
        var line = 0;
        foreach (var text in File.ReadLines(ConformanceData.PathOf("publicsuffix-list", "tests", "test_psl.txt")))
        {
            line++;
            var match = CheckLine().Match(text);
            if (match.Success)
                data.Add(line, Argument(match.Groups[1].Value), Argument(match.Groups[2].Value));
        }
        return data;
    }

    /// <summary>82 lines in all: 78 active, and 4 that upstream commented out.</summary>
    [Fact]
    public void The_test_file_has_78_active_cases() => Assert.Equal(78, Cases().Count());

    [Theory(Skip = "Commented out upstream in test_psl.txt (\"Listed, but non-Internet, TLD\"): 'local' is no longer on the list, so these 4 expectations do not hold for it.")]
    [InlineData("local", null)]
    [InlineData("example.local", null)]
    [InlineData("b.example.local", null)]
    [InlineData("a.b.example.local", null)]
    public void Commented_out_upstream(string domain, string? expected) =>
        Assert.Equal(expected, PublicSuffixList.Default.GetRegistrableDomain(domain));

    [Theory]
    [MemberData(nameof(Cases))]
    public void Registrable_domain(int line, string? domain, string? expected)
    {
        Assert.True(expected == PublicSuffixList.Default.GetRegistrableDomain(domain),
            $"line {line}: {domain ?? "null"} → expected {expected ?? "null"}, got {PublicSuffixList.Default.GetRegistrableDomain(domain) ?? "null"}");
    }

    [Fact]
    public void The_embedded_list_is_byte_for_byte_the_shared_conformance_copy()
    {
        // The same commit as test_psl.txt, so the cases above test the list Postern actually ships.
        var upstream = File.ReadAllText(ConformanceData.PathOf("publicsuffix-list", "public_suffix_list.dat"));
        var embedded = PublicSuffixList.EmbeddedText();
        var common = Math.Min(upstream.Length, embedded.Length);
        var first = Enumerable.Range(0, common).FirstOrDefault(i => upstream[i] != embedded[i], upstream.Length == embedded.Length ? -1 : common);
        Assert.True(first < 0, $"embedded list ({embedded.Length} characters) differs from upstream ({upstream.Length}) at character {first}: " +
            $"…{embedded[Math.Max(0, first - 40)..Math.Min(embedded.Length, first + 40)]}…");
        Assert.Equal(PublicSuffixList.Parse(upstream).Count, PublicSuffixList.Default.Count);
    }

    [Fact]
    public void The_embedded_list_keeps_its_MPL_licence_notice()
    {
        // MPL-2.0 §3.3/Exhibit A: the notice must travel with the file; it is the list's first three lines.
        var lines = PublicSuffixList.EmbeddedText().Split('\n');
        Assert.Equal(
            [
                "// This Source Code Form is subject to the terms of the Mozilla Public",
                "// License, v. 2.0. If a copy of the MPL was not distributed with this",
                "// file, You can obtain one at https://mozilla.org/MPL/2.0/.",
            ],
            lines[..3]);
    }

    [Fact]
    public void The_embedded_list_is_the_full_list()
    {
        Assert.True(PublicSuffixList.Default.Count > 9000);
        Assert.True(PublicSuffixList.Default.IsPublicSuffix("co.uk"));
        Assert.Equal("example.co.uk", PublicSuffixList.Default.GetRegistrableDomain("mail.example.co.uk"));
        // onmicrosoft.com is not a public suffix: every tenant's initial domain shares one Organizational Domain.
        Assert.Equal("onmicrosoft.com", PublicSuffixList.Default.GetRegistrableDomain("contoso.onmicrosoft.com"));
    }

    private static string? Argument(string text) => text == "null" ? null : text.Trim('\'');

    [GeneratedRegex(@"^checkPublicSuffix\(('[^']*'|null), ('[^']*'|null)\);")]
    private static partial Regex CheckLine();
}
