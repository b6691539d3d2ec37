using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>A domain's MTAs in order: the first that answers gets the message; none answering means queued, then retried.</summary>
public sealed class MtaFallbackTests(ITestOutputHelper output) : EndToEndTest(output)
{
    private static PosternConfig PlainConfig() => new()
    {
        Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
        DeliveryRequireTls = false, // smtp-sink has no STARTTLS
    };

    [Fact]
    public async Task Delivers_to_second_mta_when_first_has_nothing_listening()
    {
        var deadPort = FreePort.Next();
        var second = Own(await SmtpSink.StartAsync(Directory, "mta2"));
        var config = PlainConfig();
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{deadPort}", $"127.0.0.1:{second.Port}");
        await Postern.StartServeAsync(config);

        var sent = await Swaks.SendAsync(config.First.Port, "sender@external.test", "alice@contoso.test", "fallback", "--add-header", contoso.KeyHeader);
        Assert.True(sent.QueueId is not null, sent.ToString());

        var message = Assert.Single(await second.WaitForMessagesAsync(1, TimeSpan.FromSeconds(60), Diagnostics));
        Assert.Equal(sent.QueueId, message.Mail.FirstReceivedId());
        Assert.False(FreePort.Accepts(deadPort));
    }

    [Fact]
    public async Task Queues_while_every_mta_is_down_then_delivers_exactly_once_when_one_returns()
    {
        var deadPort = FreePort.Next();
        var second = Own(SmtpSink.CreateStopped(Directory, "mta2"));
        var config = PlainConfig();
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{deadPort}", $"127.0.0.1:{second.Port}");
        await Postern.StartServeAsync(config);

        var sent = await Swaks.SendAsync(config.First.Port, "sender@external.test", "alice@contoso.test", "queued", "--add-header", contoso.KeyHeader);
        var queueId = sent.QueueId;
        Assert.True(queueId is not null, sent.ToString());

        // Both MTAs refuse connections: the message waits in the queue and `queue list` shows it.
        await Poll.UntilAsync(async () => (await QueueListAsync()).Contains(queueId), TimeSpan.FromSeconds(15),
            $"`postern queue list` to show {queueId}", Diagnostics);
        Assert.Empty(second.Messages());

        // MTA 2 comes back: the next retry (delays 1 s, 2 s, 5 s, then every 5 s) delivers it.
        await second.StartAsync();
        var message = Assert.Single(await second.WaitForMessagesAsync(1, TimeSpan.FromSeconds(60), Diagnostics));
        Assert.Equal(queueId, message.Mail.FirstReceivedId());

        // Once it has left the queue nothing can deliver it again: exactly one copy.
        await Poll.UntilAsync(async () => !(await QueueListAsync()).Contains(queueId), TimeSpan.FromSeconds(30),
            $"{queueId} to leave `postern queue list`", Diagnostics);
        Assert.Single(second.Messages());
    }

    private async Task<string> QueueListAsync()
    {
        var list = await Postern.RunCliAsync("queue", "list");
        list.EnsureSuccess();
        return list.StdOut;
    }
}
