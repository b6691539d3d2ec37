using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>
/// Per-tenant limits: every tenant arrives from Exchange Online's addresses, so only the relay key tells them apart.
/// A tenant whose MTA is down fills its share of the spool and is then told 451 4.7.0; another tenant is not.
/// </summary>
public sealed class TenantLimitTests(ITestOutputHelper output) : EndToEndTest(output)
{
    [Fact]
    public async Task A_tenant_over_its_spool_bytes_gets_451_4_7_0_and_another_tenant_still_gets_its_mail_delivered()
    {
        var sink = Own(await SmtpSink.StartAsync(Directory, "fabrikam-mta"));
        // Contoso's MTA refuses connections: its mail stays in the spool.
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{FreePort.Next()}");
        var fabrikam = await Postern.CreateTenantAsync("fabrikam", "fabrikam.test", $"127.0.0.1:{sink.Port}");
        Postern.Environment["Postern__TenantLimits__MaxSpoolBytes"] = "40000";
        var config = PosternConfig.WithPlainListener();
        await Postern.StartServeAsync(config);

        var body = string.Concat(Enumerable.Repeat("A line of a message to a tenant whose MTA is down.\n", 200));
        var replies = new List<SubmissionResult>();
        for (var i = 0; i < 8; i++)
            replies.Add(await SmtpSubmission.SendAsync(config.Listener("plain").Port, RelayHarness.ExternalSender, ["alice@contoso.test"],
                ScanSamples.TextMessage(contoso.KeyHeader, RelayHarness.ExternalSender, "alice@contoso.test", $"backlog {i}", body)));
        var accepted = replies.TakeWhile(r => r.Reply.Code == 250).Count();
        Assert.True(accepted is >= 1 and < 8, string.Join("\n", replies));
        Assert.All(replies.Skip(accepted), r => Assert.True(r.Reply.Is(451, "4.7.0"), r.ToString()));

        var other = await SmtpSubmission.SendAsync(config.Listener("plain").Port, RelayHarness.ExternalSender, ["bob@fabrikam.test"],
            ScanSamples.TextMessage(fabrikam.KeyHeader, RelayHarness.ExternalSender, "bob@fabrikam.test", "unaffected", body));
        Assert.True(other.QueueId is not null, other.ToString());
        var delivered = Assert.Single(await sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        Assert.Equal("unaffected", delivered.Mail.Header("Subject"));

        var still = await SmtpSubmission.SendAsync(config.Listener("plain").Port, RelayHarness.ExternalSender, ["alice@contoso.test"],
            ScanSamples.TextMessage(contoso.KeyHeader, RelayHarness.ExternalSender, "alice@contoso.test", "still over", body));
        Assert.True(still.Reply.Is(451, "4.7.0"), still.ToString());
        Assert.Contains("tenant limit", Postern.ReadLog());
    }

    [Fact]
    public async Task A_tenant_at_its_transaction_limit_gets_451_4_7_0_while_another_tenants_message_goes_through()
    {
        // On a handoff listener a transaction lasts until the next hop answers; Contoso's never does.
        using var tarpit = new TcpListener(IPAddress.Loopback, 0);
        tarpit.Start();
        var held = new ConcurrentQueue<Socket>();
        var accepting = Task.Run(async () =>
        {
            while (true)
                held.Enqueue(await tarpit.AcceptSocketAsync());
        });
        var sink = Own(await SmtpSink.StartAsync(Directory, "fabrikam-mta"));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{((IPEndPoint)tarpit.LocalEndpoint).Port}");
        var fabrikam = await Postern.CreateTenantAsync("fabrikam", "fabrikam.test", $"127.0.0.1:{sink.Port}");
        Postern.Environment["Postern__TenantLimits__MaxConcurrentTransactions"] = "1";
        var config = new PosternConfig { Listeners = [new PosternListener("handoff", FreePort.Next(), RequireTls: false, Handoff: true)], DeliveryRequireTls = false };
        await Postern.StartServeAsync(config);

        var first = SmtpSubmission.SendAsync(config.First.Port, RelayHarness.ExternalSender, ["alice@contoso.test"],
            ScanSamples.TextMessage(contoso.KeyHeader, RelayHarness.ExternalSender, "alice@contoso.test", "stuck at the next hop", "Hello.\n"));
        // Postern connected to the tarpit: Contoso's first transaction is authenticated and in progress.
        await Poll.UntilAsync(() => !held.IsEmpty || first.IsCompleted, TimeSpan.FromSeconds(30), "Postern to hand the first message to the tarpit", Diagnostics);
        Assert.False(first.IsCompleted, "the first message was answered before the next hop held it");

        var second = await SmtpSubmission.SendAsync(config.First.Port, RelayHarness.ExternalSender, ["alice@contoso.test"],
            ScanSamples.TextMessage(contoso.KeyHeader, RelayHarness.ExternalSender, "alice@contoso.test", "one too many", "Hello.\n"));
        Assert.True(second.Reply.Is(451, "4.7.0"), second.ToString());

        var other = await SmtpSubmission.SendAsync(config.First.Port, RelayHarness.ExternalSender, ["bob@fabrikam.test"],
            ScanSamples.TextMessage(fabrikam.KeyHeader, RelayHarness.ExternalSender, "bob@fabrikam.test", "unaffected", "Hello.\n"));
        Assert.True(other.Reply.Is(250, "2.0.0"), other.ToString());
        Assert.Equal("unaffected", Assert.Single(await sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics)).Mail.Header("Subject"));

        // The next hop hangs up: Contoso's first transaction ends (451 4.4.1), and with it the tenant's turn.
        tarpit.Stop();
        foreach (var socket in held)
            socket.Dispose();
        Assert.True((await first).Reply.Is(451, "4.4.1"), (await first).ToString());
        await Task.WhenAny(accepting);
    }
}
