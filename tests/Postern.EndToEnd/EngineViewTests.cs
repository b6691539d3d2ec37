using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>
/// The relay key never reaches a scanning engine: what clamd and rspamd receive is captured on its way to them (a
/// loopback proxy in front of each), and the key header is not in it — while the message itself is; nor is the key in
/// the log, the trace or what the next hop gets.
/// </summary>
[Collection(RspamdCollection.Name)]
public sealed class EngineViewTests(RspamdDaemon rspamd, ITestOutputHelper output) : EndToEndTest(output)
{
    [Fact]
    public async Task Clamd_and_rspamd_receive_the_message_without_the_relay_key()
    {
        var clamd = Own(await ClamdDaemon.StartAsync(Directory));
        AddDiagnostics(clamd.Log);
        AddDiagnostics(rspamd.Log);
        var clamdView = Own(new RecordingProxy(clamd.Port));
        var rspamdView = Own(new RecordingProxy(new Uri(rspamd.Url).Port));
        Postern.UseClamAv($"tcp://127.0.0.1:{clamdView.Port}");
        Postern.UseRspamd($"http://127.0.0.1:{rspamdView.Port}");
        var relay = await StartRelayAsync();

        var message = ScanSamples.TextMessage(relay.Contoso.KeyHeader, RelayHarness.ExternalSender, "alice@contoso.test", "engine view check",
            "Hello Alice,\n\nthe figures are attached in the next mail.\n");
        var sent = await SmtpSubmission.SendAsync(relay.PlainPort, RelayHarness.ExternalSender, ["alice@contoso.test"], message);
        Assert.True(sent.QueueId is not null, sent.ToString());
        var delivered = Assert.Single(await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        Assert.Equal("engine view check", delivered.Mail.Header("Subject"));

        foreach (var (engine, view) in new[] { ("clamd", clamdView), ("rspamd", rspamdView) })
        {
            var received = view.Received;
            Assert.True(received.Contains("Subject: engine view check") && received.Contains("the figures are attached"),
                $"{engine} should have received the message:\n{received}");
            Assert.DoesNotContain("X-Postern-Key", received, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(relay.Contoso.RelayKey, received);
        }
        // Nor the log, the trace or the next hop.
        Assert.DoesNotContain(relay.Contoso.RelayKey, Postern.ReadLog());
        Assert.DoesNotContain(relay.Contoso.RelayKey, (await Postern.RunCliAsync("trace", "list", "--json")).EnsureSuccess().StdOut);
        Assert.False(delivered.Mail.HasHeader("X-Postern-Key"));
    }
}
