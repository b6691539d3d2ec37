using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>
/// Per-tenant limits: every tenant arrives from Exchange Online's addresses, so only the relay key tells them apart,
/// and the limits apply from the header section on, where the key is read. A tenant whose MTA is down fills its share
/// of the spool and is then told 451 4.7.0; another tenant is not.
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

    [Fact]
    public async Task A_tenant_at_its_transaction_limit_is_refused_at_the_header_section_while_its_bodies_stream_and_another_tenant_is_delivered()
    {
        var noisySink = Own(await SmtpSink.StartAsync(Directory, "contoso-mta"));
        var quietSink = Own(await SmtpSink.StartAsync(Directory, "fabrikam-mta"));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{noisySink.Port}");
        var fabrikam = await Postern.CreateTenantAsync("fabrikam", "fabrikam.test", $"127.0.0.1:{quietSink.Port}");
        Postern.Environment["Postern__TenantLimits__MaxConcurrentTransactions"] = "1";
        var config = PosternConfig.WithPlainListener();
        await Postern.StartServeAsync(config);
        var port = config.Listener("plain").Port;

        // Contoso's first message: its header section and 5 MB of body, spilled to disk (so past its header section
        // check: a refused message is dropped there and stores nothing), the rest still to come.
        await using var streaming = await StartMessageAsync(port, contoso, "alice@contoso.test", "streaming", bodyBytes: 5 * 1024 * 1024);
        await Poll.UntilAsync(() => SpilledMessages() == 1, TimeSpan.FromSeconds(30), "Contoso's first message to be spilled while it streams", Diagnostics);

        // Its transaction counts from its header section on: a second one is refused there, before its body ends, and
        // the 5 MB that follow are read and discarded, not stored.
        await using var refused = await StartMessageAsync(port, contoso, "alice@contoso.test", "one too many", bodyBytes: 5 * 1024 * 1024);
        await Poll.UntilAsync(() => Postern.ReadLog().Contains("tenant limit: 1 transactions in progress"), TimeSpan.FromSeconds(30),
            "Contoso's second message to be refused at its header section", Diagnostics);

        // Fabrikam is not held up by Contoso's transactions.
        var quiet = await SmtpSubmission.SendAsync(port, RelayHarness.ExternalSender, ["bob@fabrikam.test"],
            ScanSamples.TextMessage(fabrikam.KeyHeader, RelayHarness.ExternalSender, "bob@fabrikam.test", "unaffected", "Hello.\n"));
        Assert.True(quiet.Reply.Is(250, "2.0.0"), quiet.ToString());
        Assert.Equal("unaffected", Assert.Single(await quietSink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics)).Mail.Header("Subject"));

        var refusedReply = await FinishMessageAsync(refused);
        Assert.True(refusedReply.Is(451, "4.7.0"), refusedReply.ToString());
        // All of the second message was read by now, and none of it stored: only the first is spilled.
        Assert.Equal(1, SpilledMessages());
        var streamedReply = await FinishMessageAsync(streaming);
        Assert.True(streamedReply.Is(250, "2.0.0"), streamedReply.ToString());
        Assert.Equal("streaming", Assert.Single(await noisySink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics)).Mail.Header("Subject"));

        // The completed transaction gave its turn back.
        var after = await SmtpSubmission.SendAsync(port, RelayHarness.ExternalSender, ["alice@contoso.test"],
            ScanSamples.TextMessage(contoso.KeyHeader, RelayHarness.ExternalSender, "alice@contoso.test", "after", "Hello.\n"));
        Assert.True(after.Reply.Is(250, "2.0.0"), after.ToString());
    }

    [Fact]
    public async Task A_tenant_whose_declared_size_would_pass_its_spool_bytes_is_refused_at_the_header_section()
    {
        var sink = Own(await SmtpSink.StartAsync(Directory, "contoso-mta"));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{sink.Port}");
        Postern.Environment["Postern__TenantLimits__MaxSpoolBytes"] = "40000";
        var config = PosternConfig.WithPlainListener();
        await Postern.StartServeAsync(config);
        var port = config.Listener("plain").Port;

        // SIZE=100000 announces more than the tenant's spool may hold: refused before any of the body is stored.
        await using var declared = await StartMessageAsync(port, contoso, "alice@contoso.test", "declared too large", declaredSize: 100_000);
        await Poll.UntilAsync(() => Postern.ReadLog().Contains("100000 more would pass the limit of 40000"), TimeSpan.FromSeconds(30),
            "the message to be refused at its header section for its declared size", Diagnostics);
        var reply = await FinishMessageAsync(declared);
        Assert.True(reply.Is(451, "4.7.0"), reply.ToString());

        // The same message without the declaration fits, and is checked at its end with its real size.
        await using var undeclared = await StartMessageAsync(port, contoso, "alice@contoso.test", "fits");
        Assert.True((await FinishMessageAsync(undeclared)).Is(250, "2.0.0"));
        Assert.Equal("fits", Assert.Single(await sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics)).Mail.Header("Subject"));
    }

    [Fact]
    public async Task A_message_admitted_at_its_header_section_is_refused_at_its_end_when_its_key_was_revoked_meanwhile()
    {
        var sink = Own(await SmtpSink.StartAsync(Directory, "contoso-mta"));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{sink.Port}");
        var config = PosternConfig.WithPlainListener();
        await Postern.StartServeAsync(config);

        // Admitted at its header section (spilled), then the key is rotated with no grace while the body still streams.
        await using var streaming = await StartMessageAsync(config.Listener("plain").Port, contoso, "alice@contoso.test", "revoked", bodyBytes: 5 * 1024 * 1024);
        await Poll.UntilAsync(() => SpilledMessages() == 1, TimeSpan.FromSeconds(30), "the message to be spilled while it streams", Diagnostics);
        (await Postern.RunCliAsync("relay", "rotate", "contoso", "--grace", "00:00:00")).EnsureSuccess();
        await Poll.UntilAsync(() => Postern.ReadLog().Contains("Configuration reloaded"), TimeSpan.FromSeconds(30), "the rotation to be loaded", Diagnostics);

        var reply = await FinishMessageAsync(streaming);
        Assert.True(reply.Is(550, "5.7.1"), reply.ToString());
        Assert.Equal(0, sink.Count);
    }

    /// <summary>A transaction up to DATA, then the header section and <paramref name="bodyBytes"/> of body; the rest is <see cref="FinishMessageAsync"/>.</summary>
    private static async Task<RawSmtpClient> StartMessageAsync(int port, TestTenant tenant, string recipient, string subject, long? declaredSize = null,
        int bodyBytes = 16 * 1024)
    {
        var client = await RawSmtpClient.ConnectAsync(port);
        await client.HelloAsync();
        var size = declaredSize is { } value ? $" SIZE={value}" : "";
        Assert.Equal(250, (await client.CommandAsync($"MAIL FROM:<{RelayHarness.ExternalSender}>{size}")).Code);
        Assert.Equal(250, (await client.CommandAsync($"RCPT TO:<{recipient}>")).Code);
        Assert.Equal(354, (await client.CommandAsync("DATA")).Code);
        var body = string.Concat(Enumerable.Repeat("A line of a body still being sent, sixty-four octets long.....\n", bodyBytes / 64));
        await client.SendRawAsync(ScanSamples.TextMessage(tenant.KeyHeader, RelayHarness.ExternalSender, recipient, subject, body));
        return client;
    }

    private static async Task<SmtpResponse> FinishMessageAsync(RawSmtpClient client)
    {
        await client.SendRawAsync("The end of the body.\r\n.\r\n"u8.ToArray());
        return await client.ReadResponseAsync();
    }

    /// <summary>Messages being received that were spilled to disk (<c>MessageContent</c> spills past 4 MB).</summary>
    private int SpilledMessages() =>
        System.IO.Directory.Exists(SpillDirectory) ? System.IO.Directory.GetFiles(SpillDirectory, "*.tmp").Length : 0;

    private string SpillDirectory => Path.Combine(Postern.DataDirectory, "spool", "incoming");
}
