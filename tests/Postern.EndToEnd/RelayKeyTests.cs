using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>A message is relayed only with the relay key of the tenant it belongs to.</summary>
public sealed class RelayKeyTests(ITestOutputHelper output) : EndToEndTest(output)
{
    public enum KeyCase { Missing, Wrong, OtherTenants }

    [Theory]
    [InlineData(KeyCase.Missing, false)]
    [InlineData(KeyCase.Wrong, false)]
    [InlineData(KeyCase.OtherTenants, false)]
    [InlineData(KeyCase.Missing, true)]
    [InlineData(KeyCase.Wrong, true)]
    [InlineData(KeyCase.OtherTenants, true)]
    public async Task Refuses_inbound_message_without_the_tenants_key_and_delivers_nothing(KeyCase key, bool overTls)
    {
        var relay = await StartRelayAsync();
        string[] headers = key switch
        {
            KeyCase.Missing => [],
            KeyCase.Wrong => ["X-Postern-Key: " + new string('a', relay.Contoso.RelayKey.Length)],
            _ => [relay.Fabrikam.KeyHeader],
        };

        // Straight to the plain listener, or with STARTTLS to the Microsoft 365 listener.
        var refused = overTls
            ? await Swaks.SendAsync(relay.M365Port, RelayHarness.ExternalSender, "alice@contoso.test", "must be refused",
                ["--tls", .. headers.SelectMany(h => new[] { "--add-header", h })])
            : await relay.SendPlainAsync("alice@contoso.test", "must be refused", headers);
        Assert.True(refused.HasReply("550 5.7.1"), refused.ToString());
        Assert.Null(refused.QueueId);

        await AssertOnlyControlMessageArrivesAsync(relay);
    }

    [Theory]
    [InlineData(KeyCase.Missing)]
    [InlineData(KeyCase.Wrong)]
    [InlineData(KeyCase.OtherTenants)]
    public async Task Refuses_outbound_message_without_the_tenants_key_and_delivers_nothing(KeyCase key)
    {
        var relay = await StartRelayAsync();
        var headers = key switch
        {
            KeyCase.Missing => Array.Empty<string>(),
            KeyCase.Wrong => ["X-Postern-Key: " + new string('b', relay.Contoso.RelayKey.Length)],
            _ => [relay.Fabrikam.KeyHeader],
        };

        var refused = await Swaks.SendAsync(relay.PlainPort, "ceo@contoso.test", "partner@external.test", "must be refused",
            headers.SelectMany(h => new[] { "--add-header", h }).ToArray());
        Assert.True(refused.HasReply("550 5.7.1"), refused.ToString());
        Assert.Null(refused.QueueId);

        await AssertOnlyControlMessageArrivesAsync(relay);
    }

    [Fact]
    public async Task Accepts_inbound_message_with_the_tenants_key_and_strips_it()
    {
        var relay = await StartRelayAsync();
        var sent = await relay.SendPlainAsync("alice@contoso.test", "with key", relay.Contoso.KeyHeader);
        Assert.True(sent.HasReply("250 2.0.0"), sent.ToString());
        Assert.NotNull(sent.QueueId);

        var message = Assert.Single(await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        Assert.Equal(sent.QueueId, message.Mail.FirstReceivedId());
        Assert.False(message.Mail.HasHeader("X-Postern-Key"));
        Assert.Equal(relay.Contoso.LoopToken, message.Mail.Header("X-Postern-Loop"));
        Assert.Equal(["<alice@contoso.test>"], message.RecipientArgs);
        Assert.DoesNotContain(relay.Contoso.RelayKey, Postern.ReadLog());
    }

    [Fact]
    public async Task Delivered_message_starts_with_posterns_received_header_carrying_the_queue_id()
    {
        var relay = await StartRelayAsync();
        var sent = await relay.SendPlainAsync("alice@contoso.test", "trace first", relay.Contoso.KeyHeader);
        Assert.True(sent.QueueId is not null, sent.ToString());

        var message = Assert.Single(await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        // The ARC set Postern seals with goes on top (RFC 8617 §4.1); directly below it, Postern's Received line.
        var fields = message.Mail.HeaderFields.SkipWhile(f => f.Name.StartsWith("ARC-", StringComparison.OrdinalIgnoreCase)).ToArray();
        Assert.Equal(["ARC-Seal", "ARC-Message-Signature", "ARC-Authentication-Results"], message.Mail.HeaderFields.Take(3).Select(f => f.Name));
        var (name, value) = fields[0];
        Assert.True(name == "Received" && value.Contains($" id {sent.QueueId}"),
            "trace fields go on top (RFC 5321 §4.4); the message starts with:\n" + message.Mail.HeaderSection);
    }

    /// <summary>
    /// A message with the right key is sent after the refused one; once it is at the sink, the sink
    /// must hold nothing else (delivery is prompt, so a relayed refusal would be there too).
    /// </summary>
    private async Task AssertOnlyControlMessageArrivesAsync(RelayHarness relay)
    {
        var control = await relay.SendPlainAsync("bob@contoso.test", "control message", relay.Contoso.KeyHeader);
        Assert.True(control.QueueId is not null, control.ToString());
        await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics);
        var all = relay.Sink.Messages();
        Assert.True(all.Count == 1, "the sink received more than the control message:\n" +
            string.Join("\n---\n", all.Select(m => m.Mail.HeaderSection)));
        Assert.Equal("control message", all[0].Mail.Header("Subject"));
    }
}
