using System.Text;
using Postern.Core.Relay;

namespace Postern.Core.Tests;

public sealed class HeaderSectionTests
{
    [Fact]
    public void Finds_folded_fields_and_the_end_of_the_header_section()
    {
        var raw = "Received: from a\r\n\tby b; date\r\nX-Postern-Key: pk_abc\r\nSubject: hi\r\n\r\nbody\r\n";
        var headers = HeaderSection.Parse(Encoding.ASCII.GetBytes(raw), complete: true)!;
        Assert.Equal(raw.IndexOf("body", StringComparison.Ordinal), headers.Length);
        Assert.Equal(["from a\tby b; date".Trim()], headers.Values("received"));
        Assert.Equal(["pk_abc"], headers.Values("X-POSTERN-KEY"));
        var key = headers.Headers.Single(h => h.Name == "X-Postern-Key");
        Assert.Equal("X-Postern-Key: pk_abc\r\n", raw[key.Start..key.End]);
    }

    [Fact]
    public void Returns_null_when_the_blank_line_is_not_in_the_data_yet()
    {
        Assert.Null(HeaderSection.Parse("Subject: hi\r\nFrom: a"u8, complete: false));
    }

    [Fact]
    public void Counts_received_headers()
    {
        var raw = string.Concat(Enumerable.Repeat("Received: hop\r\n", 31)) + "\r\n";
        Assert.Equal(31, HeaderSection.Parse(Encoding.ASCII.GetBytes(raw), complete: true)!.Count("Received"));
    }
}
