using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>Spam scanning in the live relay with a real rspamd (Debian's rspamd 3.x, no network modules).</summary>
[Collection(RspamdCollection.Name)]
public sealed class ScanningSpamTests(RspamdDaemon rspamd, ITestOutputHelper output) : EndToEndTest(output)
{
    private const string Sender = RelayHarness.ExternalSender;

    [Fact]
    public async Task Gtube_gets_the_spam_verdict_from_rspamd_and_is_quarantined()
    {
        AddDiagnostics(rspamd.Log);
        Postern.UseRspamd(rspamd.Url);
        var relay = await StartRelayAsync();

        // rspamd looks for GTUBE only in text parts of at most 8 KB.
        var spam = ScanSamples.TextMessage(relay.Contoso.KeyHeader, Sender, "alice@contoso.test", "cheap watches",
            $"Buy now!\n{ScanSamples.Gtube}\n");
        Assert.True(spam.Length < 8 * 1024);
        var sent = await SmtpSubmission.SendAsync(relay.PlainPort, Sender, ["alice@contoso.test"], spam);
        Assert.True(sent.QueueId is not null, sent.ToString());

        var trace = await TraceQuery.WaitForAsync(Postern, sent.QueueId!, diagnostics: Diagnostics);
        Assert.Equal("quarantined", trace.State);
        Assert.Contains("quarantine-spam", trace.Verdict);
        Assert.Contains("quarantined by rule 'quarantine-spam'", trace.Reason);
        var finding = Assert.Single(trace.Findings, f => f.Kind == "spam");
        Assert.Equal("rspamd", finding.Engine);
        Assert.Equal("GTUBE", finding.Subject);
        Assert.Contains("GTUBE", finding.Reason);
        var score = Assert.Single(trace.Findings, f => f.Kind == "spam-score");
        Assert.True(score.Score >= 15, $"GTUBE scored {score.Score}: {trace}");
        var list = (await Postern.RunCliAsync("quarantine", "list")).EnsureSuccess();
        Assert.Contains(sent.QueueId!, list.StdOut);

        // An ordinary message is checked by rspamd too, and delivered; the spam never is.
        var ham = ScanSamples.TextMessage(relay.Contoso.KeyHeader, Sender, "alice@contoso.test", "meeting moved",
            "Hi Alice,\n\nthe meeting moved to 3 pm tomorrow, same room.\n\nBob\n");
        var control = await SmtpSubmission.SendAsync(relay.PlainPort, Sender, ["alice@contoso.test"], ham);
        Assert.True(control.QueueId is not null, control.ToString());
        var delivered = Assert.Single(await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        Assert.Equal("meeting moved", delivered.Mail.Header("Subject"));
        Assert.Equal("deliver", delivered.Mail.Header("X-Postern-Verdict"));
        var hamTrace = await TraceQuery.WaitForAsync(Postern, control.QueueId!, diagnostics: Diagnostics);
        var hamScore = Assert.Single(hamTrace.Findings, f => f.Kind == "spam-score");
        Assert.Equal("rspamd", hamScore.Engine);
        Assert.DoesNotContain(hamTrace.Findings, f => f.Kind == "spam");
        Assert.Equal(1, relay.Sink.Count);
    }
}
