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
}
