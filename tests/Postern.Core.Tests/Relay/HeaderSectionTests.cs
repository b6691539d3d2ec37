using System.Text;
using Postern.Core.Spool;

namespace Postern.Core.Tests.Relay;

public sealed class HeaderSectionTests
{
    [Fact]
    public void Finds_folded_fields_and_the_end_of_the_header_section()
    {
        var raw = "Received: from a\r\n\tby b; date\r\nX-Postern-Key: pk_abc\r\nSubject: hi\r\n\r\nbody\r\n";
        var headers = HeaderSection.Parse(Encoding.ASCII.GetBytes(raw), complete: true);
        Assert.True(headers.Ended);
        Assert.Equal(raw.IndexOf("body", StringComparison.Ordinal), headers.Length);
        Assert.Equal(["from a\tby b; date"], headers.Values("received"));
        Assert.Equal(["pk_abc"], headers.Values("X-POSTERN-KEY"));
        var key = headers.Fields.Single(h => h.Name == "X-Postern-Key");
        Assert.Equal("X-Postern-Key: pk_abc\r\n", raw[key.Start..key.End]);
    }

    [Fact]
    public void Has_not_ended_when_the_blank_line_is_not_in_the_data_yet()
    {
        Assert.False(HeaderSection.Parse("Subject: hi\r\nFrom: a"u8, complete: false).Ended);
        Assert.True(HeaderSection.Parse("Subject: hi\r\nFrom: a"u8, complete: true).Ended);
    }

    [Fact]
    public void Counts_received_headers()
    {
        var raw = string.Concat(Enumerable.Repeat("Received: hop\r\n", 31)) + "\r\n";
        Assert.Equal(31, HeaderSection.Parse(Encoding.ASCII.GetBytes(raw), complete: true).Count("Received"));
    }

    [Fact]
    public void A_line_that_is_not_a_field_is_kept_but_never_taken_for_the_relay_key()
    {
        // Whatever the relay reads as the key is what it removes: a line with white space before the colon is neither.
        var raw = " X-Postern-Key: pk_leading_space\r\nX-Postern-Key : pk_ok\r\nno colon here\r\n\r\n";
        var headers = HeaderSection.Parse(Encoding.ASCII.GetBytes(raw), complete: true);
        Assert.Equal([null, "X-Postern-Key", null], headers.Fields.Select(f => f.Name));
        Assert.Equal(["pk_ok"], headers.Values("X-Postern-Key"));
        Assert.Equal(raw.Length - 2, headers.Fields[^1].End);
    }

    [Fact]
    public void Delivery_reads_a_stored_message_into_the_same_fields_the_relay_found()
    {
        var raw = "Received: x\r\n y\r\nbroken line\r\nSubject: hi\r\n\r\nbody\r\n"u8.ToArray();
        var relay = HeaderSection.Parse(raw, complete: true);
        using var stored = RawMessage.Parse(raw);
        Assert.Equal(relay.Fields.Select(f => Encoding.ASCII.GetString(raw, f.Start, f.Length)), stored.Fields.Select(f => Encoding.ASCII.GetString(f)));
        Assert.Equal(relay.Fields.Select(f => f.Name), Enumerable.Range(0, stored.Fields.Count).Select(stored.NameOf));
        Assert.Equal(raw.Length - relay.Length, stored.BodyLength);
    }
}
