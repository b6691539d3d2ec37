using System.Text;
using System.Text.RegularExpressions;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>The message trace: what an operator reads with `postern trace list` to learn what happened to a message and why.</summary>
public sealed partial class TraceTests(ITestOutputHelper output) : EndToEndTest(output)
{
    [Fact]
    public async Task Records_tenant_direction_envelope_subject_size_and_each_attempt_with_its_reply()
    {
        var deadPort = FreePort.Next();
        var mta = Own(await SmtpSink.StartAsync(Directory, "mta2"));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{deadPort}", $"127.0.0.1:{mta.Port}");
        var config = PlainConfig();
        await Postern.StartServeAsync(config);

        var body = string.Join("\n", Enumerable.Range(0, 50).Select(i => $"line {i:00} " + new string('x', 70)));
        var content = $"{contoso.KeyHeader}\nFrom: <sender@external.test>\nTo: <alice@contoso.test>\nSubject: traced message 7\n\n{body}\n";
        await using var client = await RawSmtpClient.ConnectAsync(config.First.Port);
        await client.HelloAsync();
        Assert.True((await client.CommandAsync("MAIL FROM:<sender@external.test>")).IsPositive);
        Assert.True((await client.CommandAsync("RCPT TO:<alice@contoso.test>")).IsPositive);
        var accepted = await client.DataAsync(content);
        var queueId = QueuedAs().Match(accepted.ToString()).Groups[1].Value;
        Assert.True(accepted.Code == 250 && queueId.Length > 0, accepted.ToString());

        var entry = await TraceQuery.WaitForAsync(Postern, queueId, e => e.State == "delivered", diagnostics: Diagnostics);
        Assert.Equal(contoso.TenantId, entry.TenantId);
        Assert.Equal("inbound", entry.Direction);
        Assert.Equal("sender@external.test", entry.MailFrom);
        Assert.Equal(["alice@contoso.test"], entry.Recipients);
        Assert.Equal("traced message 7", entry.Subject);
        // The stored message: what was sent (CRLF line ends) without the key header, plus Postern's Received header.
        var sent = Encoding.UTF8.GetByteCount(content.Replace("\n", "\r\n")) - Encoding.UTF8.GetByteCount(contoso.KeyHeader + "\r\n");
        Assert.True(entry.Size >= sent && entry.Size <= sent + 1024, $"size {entry.Size} is not that of the {sent}-byte message plus a Received header: {entry}");

        // MTA 1 refused the connection, MTA 2 took the message: one attempt each, with its reply.
        Assert.True(entry.Attempts.Count == 2, entry.ToString());
        var first = Assert.Single(entry.Attempts, a => a.Server == $"127.0.0.1:{deadPort}");
        Assert.Equal("deferred", first.Outcome);
        Assert.Contains("ConnectionRefused", first.Reply);
        var second = Assert.Single(entry.Attempts, a => a.Server == $"127.0.0.1:{mta.Port}");
        Assert.Equal("delivered", second.Outcome);
        Assert.StartsWith("250", second.Reply);
        Assert.Single(await mta.WaitForMessagesAsync(1, TimeSpan.FromSeconds(10), Diagnostics));
    }

    [Fact]
    public async Task Records_a_loop_refusal_with_its_reason()
    {
        var mta = Own(await SmtpSink.StartAsync(Directory, "mta"));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{mta.Port}");
        var config = PlainConfig();
        await Postern.StartServeAsync(config);

        var looped = await Swaks.SendAsync(config.First.Port, "sender@external.test", "alice@contoso.test", "came back around",
            "--add-header", contoso.KeyHeader, "--add-header", $"X-Postern-Loop: {contoso.LoopToken}");
        Assert.True(looped.HasReply("554 5.4.6"), looped.ToString());

        TraceEntry? refused = null;
        await Poll.UntilAsync(async () => (refused = (await TraceQuery.ListAsync(Postern)).FirstOrDefault(e => e.Subject == "came back around")) is not null,
            TimeSpan.FromSeconds(30), "the refused loop in the trace", Diagnostics);
        Assert.Equal("refused", refused!.State);
        Assert.Equal(contoso.TenantId, refused.TenantId);
        Assert.Equal(["alice@contoso.test"], refused.Recipients);
        Assert.True(refused.Reason?.StartsWith("554 5.4.6", StringComparison.Ordinal) == true && refused.Reason.Contains("loop token"), refused.ToString());
        Assert.Empty(refused.Attempts);
        Assert.Empty(mta.Messages());
    }

    private static PosternConfig PlainConfig() => new()
    {
        Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
        DeliveryRequireTls = false, // smtp-sink has no STARTTLS
    };

    [GeneratedRegex(@"queued as (\S+)")]
    private static partial Regex QueuedAs();
}
