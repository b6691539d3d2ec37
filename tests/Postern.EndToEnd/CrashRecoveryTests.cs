using System.Diagnostics;
using System.Text;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>
/// A message Postern acknowledged is on disk: kill -9, SIGTERM (a graceful stop) or two SIGTERMs (stop at once) in the
/// middle of a load lose none of them.
/// </summary>
public sealed class CrashRecoveryTests(ITestOutputHelper output) : EndToEndTest(output)
{
    // POSTERN_CRASH_MESSAGES / POSTERN_CRASH_KILL_AFTER shrink the run for a quick local check.
    private static readonly int Messages = EnvInt("POSTERN_CRASH_MESSAGES", 5000);
    private static readonly int KillAfterAcknowledged = EnvInt("POSTERN_CRASH_KILL_AFTER", Messages * 3 / 10);
    private const int Sessions = 20;
    private const string Trailer = "END-OF-CRASH-TEST-MESSAGE";

    [Theory]
    [InlineData("kill -9")]
    [InlineData("SIGTERM")]
    [InlineData("SIGTERM twice")]
    public async Task Delivers_every_acknowledged_message_after_a_stop_during_load(string stop)
    {
        var sink = Own(await SmtpSink.StartAsync(Directory, "tenant-mta"));
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            DeliveryRequireTls = false,
        };
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{sink.Port}");
        await Postern.StartServeAsync(config);
        var proxy = Own(new AckRecordingProxy(config.First.Port));

        var body = new StringBuilder();
        for (var i = 0; i < 40; i++)
            body.Append($"Line {i:00} of the crash test message, long enough to make it a realistic size.\n");
        var messageFile = Directory.PathOf("message.txt");
        await File.WriteAllTextAsync(messageFile,
            $"{contoso.KeyHeader}\nFrom: <sender@external.test>\nTo: <alice@contoso.test>\nSubject: crash test\n\n{body}{Trailer}\n");

        var source = Own(SmtpSource.Start(proxy.Port, messageFile, Messages, Sessions, "sender@external.test", "alice@contoso.test"));
        await Poll.UntilAsync(() => proxy.AcknowledgedCount >= KillAfterAcknowledged || source.HasExited, TimeSpan.FromMinutes(3),
            $"{KillAfterAcknowledged} acknowledged messages", () => $"acknowledged {proxy.AcknowledgedCount}\n{source.Output}\n{Diagnostics()}");
        Assert.False(source.HasExited, $"smtp-source finished before the kill (acknowledged {proxy.AcknowledgedCount}):\n{source.Output}");

        switch (stop)
        {
            case "kill -9":
                Postern.Kill();
                break;
            case "SIGTERM":
                // Graceful: stops accepting, answers open sessions 421 4.3.2, finishes what it holds, exits 0.
                var graceful = Stopwatch.StartNew();
                await Postern.StopAsync(TimeSpan.FromSeconds(90));
                Assert.DoesNotContain("no exit after SIGTERM", Postern.ReadLog());
                Assert.Contains("Stopping", Postern.ReadLog());
                Output.WriteLine($"graceful stop took {graceful.Elapsed.TotalSeconds:0.0} s");
                break;
            case "SIGTERM twice":
                // The second signal ends the process at once; the spool still holds every acknowledged message.
                var pid = Postern.ServerPid!.Value;
                ProcessInfo.Signal(pid, 15);
                await Task.Delay(100);
                ProcessInfo.Signal(pid, 15);
                var quick = Stopwatch.StartNew();
                await Poll.UntilAsync(() => !Postern.IsServing, TimeSpan.FromSeconds(5), "postern serve to exit at the second SIGTERM", Diagnostics);
                Output.WriteLine($"exited {quick.Elapsed.TotalMilliseconds:0} ms after the second signal");
                Assert.Contains("second signal", Postern.ReadLog());
                Postern.Kill();
                break;
        }
        var ackedAtKill = proxy.AcknowledgedCount;
        // Without a server smtp-source's sessions fail; let it end before the restart so no new mail arrives.
        await source.WaitForExitAsync(TimeSpan.FromMinutes(1));
        var acknowledged = proxy.AcknowledgedQueueIds;
        Output.WriteLine($"killed postern with {ackedAtKill} acknowledged; {acknowledged.Count} after smtp-source ended (exit {source.ExitCode})");

        await Postern.StartServeAsync(config);

        // smtp-source ends the content with an extra empty line; compare without trailing blank lines.
        var expectedBody = (body + Trailer).TrimEnd('\n');
        var missing = acknowledged.ToHashSet();
        await Poll.UntilAsync(() =>
            {
                foreach (var message in sink.Messages())
                {
                    if (message.Complete && message.Mail.FirstReceivedId() is { } id && message.Mail.Body.TrimEnd('\n') == expectedBody)
                        missing.Remove(id);
                }
                return missing.Count == 0;
            },
            TimeSpan.FromMinutes(3),
            "every acknowledged message at the sink",
            () => $"{missing.Count} of {acknowledged.Count} acknowledged messages missing, e.g. {string.Join(", ", missing.Take(10))}\n{Diagnostics()}");

        var delivered = sink.Messages().Where(m => m.Complete).ToList();
        var byId = delivered.GroupBy(m => m.Mail.FirstReceivedId() ?? "(none)").ToList();
        var duplicates = byId.Where(g => g.Count() > 1).Sum(g => g.Count() - 1);
        var partial = sink.Messages().Count(m => !m.Complete);
        var unacknowledged = byId.Count(g => !acknowledged.Contains(g.Key));
        Output.WriteLine($"acknowledged={acknowledged.Count} delivered={delivered.Count} distinct={byId.Count} " +
                         $"duplicates={duplicates} delivered_but_never_acknowledged={unacknowledged} cut_off_transfers={partial} lost=0");
        Assert.All(delivered, m => Assert.False(m.Mail.HasHeader("X-Postern-Key")));
        Assert.DoesNotContain(byId, g => g.Key == "(none)");
    }

    private static int EnvInt(string name, int fallback)
        => int.TryParse(Environment.GetEnvironmentVariable(name), out var value) && value > 0 ? value : fallback;
}
