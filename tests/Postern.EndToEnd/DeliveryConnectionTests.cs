using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>Delivery to one next hop: connections are reused for later messages and never exceed the per-destination limit.</summary>
public sealed class DeliveryConnectionTests(ITestOutputHelper output) : EndToEndTest(output)
{
    private const int Messages = 12;
    private const int Limit = 2;

    [Fact]
    public async Task Delivers_a_backlog_to_one_mta_over_exactly_the_per_destination_limit_of_reused_connections()
    {
        // smtp-sink waits a second before answering DATA, so deliveries overlap and only the limit holds them back.
        var sink = Own(await SmtpSink.StartAsync(Directory, "tenant", extraArguments: ["-w", "1"]));
        var proxyPort = FreePort.Next();
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{proxyPort}");
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            DeliveryRequireTls = false,
            MaxConnectionsPerDestination = Limit,
            RetryDelays = [TimeSpan.FromHours(1)],
        };
        await Postern.StartServeAsync(config);

        // Nothing listens on the MTA's port yet: every message is deferred, building a backlog.
        for (var i = 0; i < Messages; i++)
        {
            var sent = await Swaks.SendAsync(config.First.Port, "sender@external.test", "alice@contoso.test", $"backlog {i}", "--add-header", contoso.KeyHeader);
            Assert.True(sent.QueueId is not null, sent.ToString());
        }
        await Poll.UntilAsync(async () => (await TraceQuery.ListAsync(Postern)).Count(e => e.State == "deferred") == Messages,
            TimeSpan.FromSeconds(60), $"all {Messages} messages deferred", Diagnostics);

        // The MTA comes up behind a counting proxy and the whole backlog is released at once.
        var proxy = Own(new ConnectionCountingProxy(sink.Port, proxyPort));
        (await Postern.RunCliAsync("queue", "retry", "--all")).EnsureSuccess();
        await sink.WaitForMessagesAsync(Messages, TimeSpan.FromSeconds(90), Diagnostics);

        Output.WriteLine($"{proxy.Accepted} connection(s), at most {proxy.Peak} at once, for {Messages} messages");
        Assert.True(proxy.Peak == Limit, $"expected the backlog to use exactly {Limit} connections at once (the per-destination limit), saw a peak of {proxy.Peak}");
        Assert.True(proxy.Accepted == Limit, $"expected {Messages} messages over the {Limit} reused connections, but {proxy.Accepted} were opened");
        Assert.Equal(Messages, sink.Count);
    }

    [Fact]
    public async Task Deliveries_leave_from_the_configured_bind_address()
    {
        // Exchange Online's IP-based connectors and allow lists name the addresses Postern sends from; on loopback
        // a node can be given its own 127.x address, as a region's nodes each have theirs.
        var sink = Own(await SmtpSink.StartAsync(Directory, "tenant"));
        var proxy = Own(new ConnectionCountingProxy(sink.Port));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{proxy.Port}");
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            DeliveryRequireTls = false,
            BindAddresses = ["127.0.0.77", "::1"],
        };
        await Postern.StartServeAsync(config);

        var sent = await Swaks.SendAsync(config.First.Port, "sender@external.test", "alice@contoso.test", "from 127.0.0.77", "--add-header", contoso.KeyHeader);
        Assert.True(sent.QueueId is not null, sent.ToString());
        await sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics);

        Assert.Equal([System.Net.IPAddress.Parse("127.0.0.77")], proxy.ClientAddresses);
    }

    [Fact]
    public async Task A_bind_address_that_is_not_an_address_stops_serve_naming_it()
    {
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            BindAddresses = ["127.0.0.1/8"],
        };
        var error = await Assert.ThrowsAnyAsync<Exception>(() => Postern.StartServeAsync(config));
        Assert.Contains("Postern:Delivery:BindAddresses:0 '127.0.0.1/8' is not an IP address", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_pooled_connection_the_mta_closed_while_idle_is_replaced_at_once_not_deferred()
    {
        // smtp-sink drops a connection that stays silent for 2 s: the one Postern keeps in its pool for reuse.
        var sink = Own(await SmtpSink.StartAsync(Directory, "tenant", extraArguments: ["-t", "2"]));
        var proxy = Own(new ConnectionCountingProxy(sink.Port));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{proxy.Port}");
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            DeliveryRequireTls = false,
            RetryDelays = [TimeSpan.FromHours(1)],
        };
        await Postern.StartServeAsync(config);

        var first = await Swaks.SendAsync(config.First.Port, "sender@external.test", "alice@contoso.test", "first", "--add-header", contoso.KeyHeader);
        Assert.True(first.QueueId is not null, first.ToString());
        await sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics);
        await Poll.UntilAsync(() => Task.FromResult(proxy.Open == 0), TimeSpan.FromSeconds(30), "the MTA closing the idle connection", Diagnostics);

        // The next message finds the dead connection in the pool; with a retry delay of an hour only an
        // immediate reconnect gets it there within the deadline.
        var second = await Swaks.SendAsync(config.First.Port, "sender@external.test", "alice@contoso.test", "second", "--add-header", contoso.KeyHeader);
        Assert.True(second.QueueId is not null, second.ToString());
        var delivered = await sink.WaitForMessagesAsync(2, TimeSpan.FromSeconds(30), Diagnostics);
        Assert.Contains(delivered, m => m.Mail.FirstReceivedId() == second.QueueId);
        Assert.Equal(2, proxy.Accepted);
        var trace = await TraceQuery.WaitForAsync(Postern, second.QueueId!, t => t.State == "delivered", diagnostics: Diagnostics);
        Assert.DoesNotContain(trace.Attempts, a => a.Outcome == "deferred");
    }
}
