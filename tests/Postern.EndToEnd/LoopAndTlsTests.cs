using System.Text;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>Mail loops are refused at end of DATA; the Microsoft 365 listener insists on STARTTLS.</summary>
public sealed class LoopAndTlsTests(ITestOutputHelper output) : EndToEndTest(output)
{
    [Fact]
    public async Task Refuses_message_carrying_the_tenants_loop_token()
    {
        var relay = await StartRelayAsync();
        var result = await relay.SendPlainAsync("alice@contoso.test", "looped once", relay.Contoso.KeyHeader, $"X-Postern-Loop: {relay.Contoso.LoopToken}");
        Assert.True(result.HasReply("554 5.4.6"), result.ToString());
        Assert.Null(result.QueueId);
    }

    [Fact]
    public async Task Loop_token_rotation_keeps_both_tokens_recognised_and_stamps_the_new_one_only_after_switch()
    {
        var relay = await StartRelayAsync();
        (await Postern.RunCliAsync("relay", "rotate-loop-token", relay.Contoso.Name)).EnsureSuccess();
        var show = (await Postern.RunCliAsync("tenant", "show", relay.Contoso.Name)).EnsureSuccess().StdOut;
        var coming = System.Text.RegularExpressions.Regex.Match(show, @"Loop token in rotation \(recognised, not stamped\): ([0-9a-f]+)").Groups[1].Value;
        Assert.Matches("^[0-9a-f]{32}$", coming);
        Assert.NotEqual(relay.Contoso.LoopToken, coming);

        // Both tokens are loops once a server has reloaded (within a second); the old one is still stamped.
        await Poll.UntilAsync(async () => (await relay.SendPlainAsync("alice@contoso.test", "coming token", relay.Contoso.KeyHeader, $"X-Postern-Loop: {coming}")).HasReply("554 5.4.6"),
            TimeSpan.FromSeconds(10), "the coming loop token is refused as a loop");
        Assert.True((await relay.SendPlainAsync("alice@contoso.test", "old token", relay.Contoso.KeyHeader, $"X-Postern-Loop: {relay.Contoso.LoopToken}")).HasReply("554 5.4.6"));
        var before = await relay.SendPlainAsync("alice@contoso.test", "before switch", relay.Contoso.KeyHeader);
        Assert.True(before.HasReply("250 2.0.0"), before.ToString());
        await Poll.UntilAsync(async () => (await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics))
            .Any(m => m.Mail.HeaderSection.Contains("Subject: before switch")), TimeSpan.FromSeconds(30), "the message before the switch is delivered");
        Assert.Equal(relay.Contoso.LoopToken, (await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics))
            .Single(m => m.Mail.HeaderSection.Contains("Subject: before switch")).Mail.Header("X-Postern-Loop"));

        (await Postern.RunCliAsync("relay", "rotate-loop-token", relay.Contoso.Name, "--switch")).EnsureSuccess();
        await Poll.UntilAsync(async () =>
        {
            var sent = await relay.SendPlainAsync("alice@contoso.test", "after switch", relay.Contoso.KeyHeader);
            var messages = await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics);
            return sent.HasReply("250 2.0.0") && messages.Any(m => m.Mail.HeaderSection.Contains("Subject: after switch") && m.Mail.Header("X-Postern-Loop") == coming);
        }, TimeSpan.FromSeconds(15), "mail is stamped with the new token after --switch");
    }

    [Fact]
    public async Task Refuses_message_with_more_than_30_received_headers()
    {
        var relay = await StartRelayAsync();
        var result = await SendWithReceivedHeadersAsync(relay, 31);
        Assert.True(result.Is(554, "5.4.6"), result.ToString());
    }

    [Fact]
    public async Task Accepts_message_with_30_received_headers()
    {
        var relay = await StartRelayAsync();
        var result = await SendWithReceivedHeadersAsync(relay, 30);
        Assert.True(result.Is(250, "2.0.0"), result.ToString());
    }

    [Fact]
    public async Task Rejects_mail_before_starttls_on_m365_listener()
    {
        var relay = await StartRelayAsync();
        await using var client = await RawSmtpClient.ConnectAsync(relay.M365Port);
        var ehlo = await client.HelloAsync();
        Assert.Contains(ehlo.Lines, l => l.StartsWith("STARTTLS", StringComparison.OrdinalIgnoreCase));
        var mail = await client.CommandAsync($"MAIL FROM:<{RelayHarness.ExternalSender}>");
        Assert.True(mail.Is(530, "5.7.0"), mail.ToString());
    }

    [Fact]
    public async Task Accepts_mail_after_starttls_on_m365_listener()
    {
        var relay = await StartRelayAsync();
        await using var client = await RawSmtpClient.ConnectAsync(relay.M365Port);
        await client.HelloAsync(startTls: true);
        Assert.True(client.IsTls);
        var mail = await client.CommandAsync($"MAIL FROM:<{RelayHarness.ExternalSender}>");
        Assert.True(mail.Code == 250, mail.ToString());
        var rcpt = await client.CommandAsync("RCPT TO:<alice@contoso.test>");
        Assert.True(rcpt.Code == 250, rcpt.ToString());
        var data = await client.DataAsync($"{relay.Contoso.KeyHeader}\nSubject: over tls\n\nhello\n");
        Assert.True(data.Is(250, "2.0.0"), data.ToString());
    }

    [Fact]
    public async Task Refuses_a_message_with_bare_line_feeds_and_delivers_nothing()
    {
        var relay = await StartRelayAsync();
        await using var client = await RawSmtpClient.ConnectAsync(relay.PlainPort);
        await client.HelloAsync();
        Assert.True((await client.CommandAsync($"MAIL FROM:<{RelayHarness.ExternalSender}>")).IsPositive);
        Assert.True((await client.CommandAsync("RCPT TO:<alice@contoso.test>")).IsPositive);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        // "\n.\n" would end the message on a server that accepts bare LF: a smuggled second message follows.
        await client.SendRawAsync(Encoding.ASCII.GetBytes(
            $"{relay.Contoso.KeyHeader}\r\nSubject: smuggle\r\n\r\nhello\n.\nMAIL FROM:<evil@external.test>\r\n.\r\n"));
        var reply = await client.ReadResponseAsync();
        Assert.True(reply.Is(550, "5.6.0"), reply.ToString());
        var control = await relay.SendPlainAsync("alice@contoso.test", "control", relay.Contoso.KeyHeader);
        Assert.True(control.HasReply("250 2.0.0"), control.ToString());
        var delivered = Assert.Single(await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        Assert.Contains("Subject: control", delivered.Mail.HeaderSection);
    }

    private static async Task<SmtpResponse> SendWithReceivedHeadersAsync(RelayHarness relay, int hops)
    {
        var message = new StringBuilder();
        for (var i = hops; i > 0; i--)
            message.Append($"Received: from hop{i}.external.test ([192.0.2.{i}]) by hop{i + 1}.external.test with ESMTP id HOP{i}; Sat, 1 Nov 2025 10:00:{i % 60:00} +0000\n");
        message.Append($"{relay.Contoso.KeyHeader}\nFrom: <{RelayHarness.ExternalSender}>\nTo: <alice@contoso.test>\nSubject: {hops} hops\n\nhello\n");

        await using var client = await RawSmtpClient.ConnectAsync(relay.PlainPort);
        await client.HelloAsync();
        Assert.True((await client.CommandAsync($"MAIL FROM:<{RelayHarness.ExternalSender}>")).IsPositive);
        Assert.True((await client.CommandAsync("RCPT TO:<alice@contoso.test>")).IsPositive);
        return await client.DataAsync(message.ToString());
    }
}
