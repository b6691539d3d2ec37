using System.Text;
using System.Text.RegularExpressions;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>
/// Scanning in the live relay with a real clamd (Debian's clamav-daemon, the shipped EICAR signature):
/// malware is quarantined and never reaches the tenant's MTA, release delivers it exactly once, and an
/// engine that goes away makes Postern defer rather than pass mail unscanned.
/// </summary>
public sealed partial class ScanningTests(ITestOutputHelper output) : EndToEndTest(output)
{
    private const string Sender = RelayHarness.ExternalSender;

    [Fact]
    public async Task Quarantines_an_eicar_attachment_and_releases_it_exactly_once_when_asked_twice_at_the_same_time()
    {
        var clamd = Own(await ClamdDaemon.StartAsync(Directory));
        AddDiagnostics(clamd.Log);
        Postern.UseClamAv(clamd.UnixEndpoint);
        var relay = await StartRelayAsync();

        var infected = await SendAsync(relay, ScanSamples.MessageWithAttachment(
            relay.Contoso.KeyHeader, Sender, "alice@contoso.test", "invoice with eicar", "invoice.com", ScanSamples.Eicar));
        // Quarantined mail is acknowledged: Microsoft 365 already accepted it, refusing it now would only make backscatter.
        Assert.True(infected.QueueId is not null, infected.ToString());
        var id = infected.QueueId!;

        var trace = await TraceQuery.WaitForAsync(Postern, id, diagnostics: Diagnostics);
        Assert.Equal("quarantined", trace.State);
        Assert.Contains("quarantine-malware", trace.Verdict);
        Assert.Contains("quarantined by rule 'quarantine-malware'", trace.Reason);
        var virus = Assert.Single(trace.Findings, f => f.Kind == "virus");
        Assert.Equal("clamav", virus.Engine);
        Assert.Equal(ClamdDaemon.EicarSignature, virus.Subject);
        Assert.Contains(ClamdDaemon.EicarSignature, virus.Reason);

        var list = (await Postern.RunCliAsync("quarantine", "list")).EnsureSuccess();
        Assert.Contains(id, list.StdOut);
        Assert.Contains("quarantine-malware", list.StdOut);
        var show = (await Postern.RunCliAsync("quarantine", "show", id)).EnsureSuccess();
        Assert.Contains("State: held", show.StdOut);
        Assert.Contains("Subject: invoice with eicar", show.StdOut);
        Assert.DoesNotContain("X-Postern-Key", show.StdOut);

        // A clean message sent after it arrives; once it is there, the infected one would be there too.
        var control = await SendAsync(relay, ScanSamples.TextMessage(relay.Contoso.KeyHeader, Sender, "bob@contoso.test", "control", "Nothing to see."));
        Assert.True(control.QueueId is not null, control.ToString());
        await relay.Sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics);
        Assert.Equal(["control"], relay.Sink.Messages().Select(m => m.Mail.Header("Subject")));

        // Two operators release it at the same moment.
        var releases = await Task.WhenAll(
            Postern.RunCliAsync("quarantine", "release", id),
            Postern.RunCliAsync("quarantine", "release", id));
        foreach (var release in releases)
            Assert.True(release.Succeeded || (release.StdOut + release.StdErr).Contains("not held"), release.ToString());
        var succeeded = releases.Where(r => r.Succeeded).ToList();
        Assert.NotEmpty(succeeded);
        // Every command that succeeded reports the same new queue id: one release, not two.
        var releasedAs = succeeded.Select(r => DeliveringAs().Match(r.StdOut)).Select(m => m.Success ? m.Groups[1].Value : "(none)").Distinct().ToList();
        Assert.True(releasedAs.Count == 1 && releasedAs[0] != "(none)", string.Join("\n", releases.Select(r => r.ToString())));

        // Wait until the server has handled every request it was given (each successful command made one).
        await Poll.UntilAsync(() =>
            Postern.ReadLog().Occurrences($"Quarantine {id}: released as") == 1 &&
            Postern.ReadLog().Occurrences($"Quarantine {id}: release asked, but it is not held") == succeeded.Count - 1,
            TimeSpan.FromSeconds(30), "the server to handle both release requests", Diagnostics);
        await TraceQuery.WaitForAsync(Postern, releasedAs[0], e => e.State == "delivered", diagnostics: Diagnostics);
        var original = await TraceQuery.WaitForAsync(Postern, id, e => e.State == "released", diagnostics: Diagnostics);
        Assert.Contains($"released as {releasedAs[0]}", original.Reason);

        var messages = await relay.Sink.WaitForMessagesAsync(2, TimeSpan.FromSeconds(30), Diagnostics);
        var copies = messages.Where(m => m.Mail.Header("Subject") == "invoice with eicar").ToList();
        var copy = Assert.Single(copies);
        Assert.Equal(["<alice@contoso.test>"], copy.RecipientArgs);
        Assert.Contains(Convert.ToBase64String(ScanSamples.Eicar)[..40], copy.Mail.Body);
        Assert.Equal(relay.Contoso.LoopToken, copy.Mail.Header("X-Postern-Loop"));
        Assert.False(copy.Mail.HasHeader("X-Postern-Key"));

        // Asked again later: refused, and still one copy.
        var again = await Postern.RunCliAsync("quarantine", "release", id);
        Assert.False(again.Succeeded, again.ToString());
        Assert.Contains("not held", again.StdOut + again.StdErr);
        var shown = (await Postern.RunCliAsync("quarantine", "show", id)).EnsureSuccess();
        Assert.Contains($"State: released (as {releasedAs[0]})", shown.StdOut);
        Assert.Equal(2, relay.Sink.Count);
    }

    [Fact]
    public async Task Defers_mail_while_clamd_is_down_never_passes_it_unscanned_and_delivers_it_once_clamd_is_back()
    {
        var clamd = Own(await ClamdDaemon.StartAsync(Directory));
        AddDiagnostics(clamd.Log);
        Postern.UseClamAv(clamd.TcpEndpoint);
        var relay = await StartRelayAsync();

        // A sender that keeps sending (every third message infected) while clamd goes away.
        var sent = new List<Sent>();
        int Count(Func<Sent, bool> f) { lock (sent) return sent.Count(f); }
        var stoppedAfter = int.MaxValue;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var flow = Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                var infected = i % 3 == 2;
                var subject = $"flow {i:D4}";
                var message = Build(relay, subject, infected);
                var startedAfterStop = Volatile.Read(ref stoppedAfter) != int.MaxValue;
                var result = await SendAsync(relay, message);
                lock (sent)
                    sent.Add(new Sent(subject, infected, message, result, startedAfterStop));
            }
        });
        try
        {
            await Poll.UntilAsync(() => Count(s => s.Result.Reply.Code == 250) >= 6 || flow.IsCompleted, TimeSpan.FromSeconds(60),
                "6 messages accepted with clamd running", Diagnostics);
            await clamd.StopAsync();
            Volatile.Write(ref stoppedAfter, Count(_ => true));
            await Poll.UntilAsync(() => Count(s => s.StartedAfterStop) >= 9 || flow.IsCompleted, TimeSpan.FromSeconds(60),
                "9 messages sent with clamd stopped", Diagnostics);
        }
        finally
        {
            await stop.CancelAsync();
            await flow;
        }

        List<Sent> all;
        lock (sent)
            all = sent.ToList();
        foreach (var s in all)
            Assert.True(s.Result.Reply.Code == 250 || s.Result.Reply.Is(451, "4.7.1"), $"{s.Subject}: {s.Result}");
        var afterStop = all.Where(s => s.StartedAfterStop).ToList();
        Assert.True(afterStop.Count >= 9, $"only {afterStop.Count} sent after clamd stopped");
        foreach (var s in afterStop)
            Assert.True(s.Result.Reply.Is(451, "4.7.1"), $"{s.Subject} was sent after clamd stopped, yet: {s.Result}");
        var accepted = all.Where(s => s.Result.Reply.Code == 250).ToList();
        var deferred = all.Where(s => s.Result.Reply.Code == 451).ToList();
        Assert.Contains(deferred, s => s.Infected);

        // The trace says why: the engine-down rule, with clamd's unavailability as the finding.
        // The trace is written in batches off the SMTP path: wait for the record rather than read once.
        TraceEntry? deferredTrace = null;
        await Poll.UntilAsync(async () => (deferredTrace = (await TraceQuery.ListAsync(Postern))
            .FirstOrDefault(e => e.State == "refused" && e.Reason?.Contains("451 4.7.1") == true)) is not null,
            TimeSpan.FromSeconds(30), "a refused 451 record in the trace", Diagnostics);
        Assert.NotNull(deferredTrace);
        Assert.Contains("defer-when-an-engine-is-down", deferredTrace.Reason);
        Assert.Contains(deferredTrace.Findings, f => f.Engine == "clamav" && f.Kind == "engine-unavailable");

        // Only the clean messages accepted while clamd ran reach the tenant: nothing deferred, nothing infected.
        var acceptedClean = accepted.Where(s => !s.Infected).Select(s => s.Subject).Order().ToList();
        await relay.Sink.WaitForMessagesAsync(acceptedClean.Count, TimeSpan.FromSeconds(30), Diagnostics);
        Assert.Equal(acceptedClean, relay.Sink.Messages().Select(m => m.Mail.Header("Subject") ?? "").Order().ToList());

        // clamd is back; the client (Exchange Online would) sends every deferred message again.
        await clamd.StartAsync();
        foreach (var s in deferred)
        {
            var retry = await SendAsync(relay, s.Message);
            Assert.True(retry.QueueId is not null, $"{s.Subject} retried with clamd back: {retry}");
            if (s.Infected)
            {
                var held = await TraceQuery.WaitForAsync(Postern, retry.QueueId!, diagnostics: Diagnostics);
                Assert.Equal("quarantined", held.State);
            }
        }

        var clean = all.Where(s => !s.Infected).Select(s => s.Subject).Order().ToList();
        var messages = await relay.Sink.WaitForMessagesAsync(clean.Count, TimeSpan.FromSeconds(60), Diagnostics);
        Assert.Equal(clean, messages.Select(m => m.Mail.Header("Subject") ?? "").Order().ToList());
        foreach (var m in messages)
            Assert.Equal("deliver", m.Mail.Header("X-Postern-Verdict"));
        var quarantined = (await Postern.RunCliAsync("quarantine", "list")).EnsureSuccess().StdOut;
        foreach (var s in all.Where(s => s.Infected))
            Assert.Contains(s.Subject, quarantined);
    }

    private sealed record Sent(string Subject, bool Infected, byte[] Message, SubmissionResult Result, bool StartedAfterStop);

    private static byte[] Build(RelayHarness relay, string subject, bool infected) => infected
        ? ScanSamples.MessageWithAttachment(relay.Contoso.KeyHeader, Sender, "alice@contoso.test", subject, "setup.com", ScanSamples.Eicar)
        : ScanSamples.TextMessage(relay.Contoso.KeyHeader, Sender, "alice@contoso.test", subject, $"Message {subject}.");

    private static Task<SubmissionResult> SendAsync(RelayHarness relay, byte[] message)
        => SmtpSubmission.SendAsync(relay.PlainPort, Sender, [ToOf(message)], message);

    private static string ToOf(byte[] message)
        => ToHeader().Match(Encoding.ASCII.GetString(message)) is { Success: true } m ? m.Groups[1].Value : throw new ArgumentException("no To header");


    [GeneratedRegex(@"delivering as (\S+?)\.?\s*$", RegexOptions.Multiline)]
    private static partial Regex DeliveringAs();

    [GeneratedRegex(@"^To: <([^>]+)>", RegexOptions.Multiline)]
    private static partial Regex ToHeader();
}
