using System.Diagnostics;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>
/// Delivery isolation between tenants: a hung next hop with a backlog holds only its own connection budget,
/// a tenant sending twenty times more to a shared destination does not push the other's mail back, and a
/// next hop that never answers is in the trace as a timeout.
/// </summary>
public sealed class NoisyNeighbourTests(ITestOutputHelper output) : EndToEndTest(output)
{
    [Fact]
    public async Task A_tenant_whose_mta_accepts_and_never_answers_does_not_delay_another_tenants_mail()
    {
        const int Backlog = 300;
        const int Messages = 40;
        const int Budget = 20;
        var (tarpit, bravoMta, alpha, bravo) = await HungAlphaAndBravoAsync();
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            DeliveryRequireTls = false,
            MaxConnectionsPerDestination = Budget,
            // Alpha's backlog is more than its share of the in-memory queue: the rest waits in the spool.
            MaxActiveMessages = 200,
            MaxActiveMessagesPerTenant = 100,
        };
        await Postern.StartServeAsync(config);

        // Alpha's backlog is queued first; its deliveries sit waiting for a greeting (5 minutes by default).
        await SendAsync(config.First.Port, alpha, "sender@external.test", "user@alpha.test", Backlog, "alpha backlog");
        await AcceptedAsync("alpha backlog", Backlog);
        await Poll.UntilAsync(() => tarpit.Accepted >= Budget, TimeSpan.FromSeconds(30), $"{Budget} connections to the hung MTA", Diagnostics);

        var clock = Stopwatch.StartNew();
        await SendAsync(config.First.Port, bravo, "sender@external.test", "user@bravo.test", Messages, "bravo mail");
        await bravoMta.WaitForMessagesAsync(Messages, TimeSpan.FromSeconds(10) - clock.Elapsed, Diagnostics);
        Output.WriteLine($"bravo's {Messages} messages delivered {clock.Elapsed.TotalSeconds:0.0} s after the first was sent, with {Backlog} of alpha's stuck");

        Assert.Equal(Messages, bravoMta.Count);
        await AcceptedAsync("bravo mail", Messages);
        Assert.True(tarpit.Accepted == Budget, $"the hung MTA should hold exactly its budget of {Budget} connections, but {tarpit.Accepted} were opened");
    }

    [Fact]
    public async Task A_tenant_sending_twenty_times_more_to_a_shared_destination_does_not_hold_back_the_others_mail()
    {
        const int Backlog = 200;
        const int Messages = 10;
        // The shared next hop takes a second per message, four at a time: alpha's backlog needs almost a minute.
        var (internet, alpha, bravo, config) = await SharedSlowMxAsync();

        await SendAsync(config.First.Port, alpha, "news@alpha.test", "someone@remote.test", Backlog, "alpha newsletter");
        var clock = Stopwatch.StartNew();
        await SendAsync(config.First.Port, bravo, "clerk@bravo.test", "someone@remote.test", Messages, "bravo invoice");

        var alphaDelivered = await AlphaDeliveredWhenBravoIsAsync(internet, Messages);
        await AcceptedAsync("alpha newsletter", Backlog);
        await AcceptedAsync("bravo invoice", Messages);
        Output.WriteLine($"bravo's {Messages} messages delivered in {clock.Elapsed.TotalSeconds:0.0} s; alpha had {alphaDelivered} of {Backlog} delivered by then");

        // Taking turns, bravo's mail waits for about as many of alpha's as it has itself, not for alpha's whole backlog.
        Assert.True(alphaDelivered <= Backlog / 2,
            $"bravo's mail waited behind alpha's backlog: {alphaDelivered} of alpha's {Backlog} messages were delivered before bravo's last");
    }

    [Fact]
    public async Task A_tenant_mailing_many_domains_behind_one_shared_mx_host_does_not_hold_back_the_others_mail()
    {
        const int Domains = 40;
        const int Copies = 5;
        const int Messages = 10;
        // Every domain's MX is mx.sink.test (a hosted-mail provider): one connection budget for all of them, and
        // alpha's newsletter to forty of its domains wants ten times that budget at once.
        var (internet, alpha, bravo, config) = await SharedSlowMxAsync();

        var recipients = string.Join(',', Enumerable.Range(0, Domains).Select(i => $"someone@customer{i}.test"));
        for (var i = 0; i < Copies; i++)
        {
            var sent = await Swaks.SendAsync(config.First.Port, "news@alpha.test", recipients, "alpha newsletter", "--add-header", alpha.KeyHeader);
            Assert.True(sent.QueueId is not null, sent.ToString());
        }
        var clock = Stopwatch.StartNew();
        await SendAsync(config.First.Port, bravo, "clerk@bravo.test", "someone@remote.test", Messages, "bravo invoice");

        var alphaDelivered = await AlphaDeliveredWhenBravoIsAsync(internet, Messages);
        Output.WriteLine($"bravo's {Messages} messages delivered in {clock.Elapsed.TotalSeconds:0.0} s; alpha had {alphaDelivered} of {Domains * Copies} delivered by then");

        // Taking turns at the host's connections, bravo waits for about as many of alpha's deliveries as it has itself.
        Assert.True(alphaDelivered <= Domains * Copies / 4,
            $"bravo's mail waited behind alpha's deliveries to the shared MX host: {alphaDelivered} of alpha's {Domains * Copies} were delivered before bravo's last");
    }

    [Fact]
    public async Task A_next_hop_that_never_sends_its_greeting_is_in_the_trace_as_a_timeout_and_its_queue_waits()
    {
        var (tarpit, bravoMta, alpha, bravo) = await HungAlphaAndBravoAsync();
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            DeliveryRequireTls = false,
            GreetingTimeout = TimeSpan.FromSeconds(2),
            RetryDelays = [TimeSpan.FromHours(1)],
        };
        await Postern.StartServeAsync(config);

        var first = await Swaks.SendAsync(config.First.Port, "sender@external.test", "user@alpha.test", "first", "--add-header", alpha.KeyHeader);
        Assert.True(first.QueueId is not null, first.ToString());
        var expected = $"timed out waiting for the greeting from 127.0.0.1:{tarpit.Port} after 2 s";
        var trace = await TraceQuery.WaitForAsync(Postern, first.QueueId!, t => t.State == "deferred", diagnostics: Diagnostics);
        var attempt = Assert.Single(trace.Attempts);
        Assert.Equal(("deferred", expected), (attempt.Outcome, attempt.Reply));
        Assert.Contains(expected, trace.Reason);

        // The destination is known to be hung: the next message waits for the retry without opening another connection.
        var second = await Swaks.SendAsync(config.First.Port, "sender@external.test", "user@alpha.test", "second", "--add-header", alpha.KeyHeader);
        Assert.True(second.QueueId is not null, second.ToString());
        var waiting = await TraceQuery.WaitForAsync(Postern, second.QueueId!, t => t.State == "deferred", diagnostics: Diagnostics);
        Assert.Equal("delivery temporarily suspended: " + expected, waiting.Reason);
        Assert.Equal(1, tarpit.Accepted);

        // The other tenant's mail goes as usual.
        var other = await Swaks.SendAsync(config.First.Port, "sender@external.test", "user@bravo.test", "other", "--add-header", bravo.KeyHeader);
        Assert.True(other.QueueId is not null, other.ToString());
        await bravoMta.WaitForMessagesAsync(1, TimeSpan.FromSeconds(10), Diagnostics);
    }

    [Fact]
    public async Task A_next_hop_that_takes_the_message_and_never_answers_its_end_is_in_the_trace_as_a_timeout_and_another_tenant_is_delivered_meanwhile()
    {
        var hung = Own(new TarpitMta(hangAfterData: true));
        var bravoMta = Own(await SmtpSink.StartAsync(Directory, "bravo-mta"));
        var alpha = await Postern.CreateTenantAsync("alpha", "alpha.test", $"127.0.0.1:{hung.Port}");
        var bravo = await Postern.CreateTenantAsync("bravo", "bravo.test", $"127.0.0.1:{bravoMta.Port}");
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            DeliveryRequireTls = false,
            DataTimeout = TimeSpan.FromSeconds(6),
            RetryDelays = [TimeSpan.FromHours(1)],
        };
        await Postern.StartServeAsync(config);

        var sent = await Swaks.SendAsync(config.First.Port, "sender@external.test", "user@alpha.test", "hung after data", "--add-header", alpha.KeyHeader);
        Assert.True(sent.QueueId is not null, sent.ToString());
        // While alpha's next hop sits on the end of its DATA (6 s before Postern gives up), bravo's mail goes through.
        var other = await Swaks.SendAsync(config.First.Port, "sender@external.test", "user@bravo.test", "bravo meanwhile", "--add-header", bravo.KeyHeader);
        Assert.True(other.QueueId is not null, other.ToString());
        Assert.Equal("bravo meanwhile", Assert.Single(await bravoMta.WaitForMessagesAsync(1, TimeSpan.FromSeconds(4), Diagnostics)).Mail.Header("Subject"));

        // Not "connection lost" or a bare "deferred": the administrator reads which reply never came, from whom, after how long.
        var expected = $"timed out waiting for the reply to DATA from 127.0.0.1:{hung.Port} after 6 s";
        var trace = await TraceQuery.WaitForAsync(Postern, sent.QueueId!, t => t.State == "deferred", diagnostics: Diagnostics);
        var attempt = Assert.Single(trace.Attempts);
        Assert.Equal(("deferred", expected), (attempt.Outcome, attempt.Reply));
        Assert.Contains(expected, trace.Reason);
    }

    [Fact]
    public async Task A_backlog_larger_than_the_in_memory_queue_waits_in_the_spool_and_is_delivered_exactly_once()
    {
        const int Messages = 120;
        var sink = SmtpSink.CreateStopped(Directory, "alpha-mta");
        Own(sink);
        var alpha = await Postern.CreateTenantAsync("alpha", "alpha.test", $"127.0.0.1:{sink.Port}");
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            DeliveryRequireTls = false,
            MaxActiveMessages = 10,
            RetryDelays = [TimeSpan.FromHours(1)],
        };
        await Postern.StartServeAsync(config);

        // The MTA is down: the backlog is deferred, read back from the spool ten at a time when it is retried.
        await SendAsync(config.First.Port, alpha, "sender@external.test", "user@alpha.test", Messages, "alpha backlog");
        await AcceptedAsync("alpha backlog", Messages);
        await Poll.UntilAsync(async () => (await TraceQuery.ListAsync(Postern, 5000)).Count(t => t.State == "deferred") == Messages,
            TimeSpan.FromSeconds(60), $"all {Messages} messages deferred", Diagnostics);
        await sink.StartAsync();
        (await Postern.RunCliAsync("queue", "retry", "--all")).EnsureSuccess();

        var delivered = await sink.WaitForMessagesAsync(Messages, TimeSpan.FromSeconds(60), Diagnostics);
        await Poll.UntilAsync(async () => (await TraceQuery.ListAsync(Postern, 5000)).Count(t => t.State == "delivered") == Messages,
            TimeSpan.FromSeconds(30), $"all {Messages} messages delivered in the trace", Diagnostics);
        Assert.Equal(Messages, sink.Count);
        Assert.Equal(Messages, delivered.Select(m => m.Mail.FirstReceivedId()).Distinct().Count());
    }

    /// <summary>Tenants alpha and bravo; every domain's MX is one smtp-sink (mx.sink.test) that takes a second per message, four connections at a time.</summary>
    private async Task<(SmtpSink Internet, TestTenant Alpha, TestTenant Bravo, PosternConfig Config)> SharedSlowMxAsync()
    {
        var internet = Own(await SmtpSink.StartAsync(Directory, "internet", extraArguments: ["-w", "1"]));
        var tenantMtas = Own(await SmtpSink.StartAsync(Directory, "tenant-mtas"));
        var dns = Own(await DnsServer.StartAsync(Directory, DnsServer.CatchAllZone));
        var alpha = await Postern.CreateTenantAsync("alpha", "alpha.test", $"127.0.0.1:{tenantMtas.Port}");
        var bravo = await Postern.CreateTenantAsync("bravo", "bravo.test", $"127.0.0.1:{tenantMtas.Port}");
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            DeliveryRequireTls = false,
            MxPort = internet.Port,
            DnsServers = [dns.EndPoint],
            MaxConnectionsPerDestination = 4,
        };
        await Postern.StartServeAsync(config);
        return (internet, alpha, bravo, config);
    }

    /// <summary>Waits for bravo's <paramref name="messages"/> at the shared MX; returns how many of alpha's were there by then.</summary>
    private async Task<int> AlphaDeliveredWhenBravoIsAsync(SmtpSink internet, int messages)
    {
        int From(string domain) => internet.Messages().Count(m => m.Complete && m.MailFromArgs.Contains("@" + domain + ">", StringComparison.Ordinal));
        await Poll.UntilAsync(() => From("bravo.test") == messages, TimeSpan.FromSeconds(60), $"bravo's {messages} messages at the shared MX", Diagnostics);
        return From("alpha.test");
    }

    /// <summary>Tenant alpha's MTA is a tarpit; tenant bravo's is an smtp-sink.</summary>
    private async Task<(TarpitMta Tarpit, SmtpSink BravoMta, TestTenant Alpha, TestTenant Bravo)> HungAlphaAndBravoAsync()
    {
        var tarpit = Own(new TarpitMta());
        var bravoMta = Own(await SmtpSink.StartAsync(Directory, "bravo-mta"));
        var alpha = await Postern.CreateTenantAsync("alpha", "alpha.test", $"127.0.0.1:{tarpit.Port}");
        var bravo = await Postern.CreateTenantAsync("bravo", "bravo.test", $"127.0.0.1:{bravoMta.Port}");
        return (tarpit, bravoMta, alpha, bravo);
    }

    /// <summary>Sends <paramref name="count"/> copies with smtp-source, ten sessions at once.</summary>
    private async Task SendAsync(int port, TestTenant tenant, string from, string to, int count, string subject)
    {
        var file = Directory.PathOf($"{tenant.Name}-{count}.txt");
        await File.WriteAllTextAsync(file, $"{tenant.KeyHeader}\nFrom: <{from}>\nTo: <{to}>\nSubject: {subject}\n\nHello from {tenant.Name}.\n");
        await using var source = SmtpSource.Start(port, file, count, sessions: 10, from, to);
        Assert.True(await source.WaitForExitAsync(TimeSpan.FromSeconds(60)), $"smtp-source did not finish sending {count} messages: {source.Output}");
        Assert.True(source.ExitCode == 0, $"smtp-source failed: {source.Output}");
    }

    /// <summary>Every one of the <paramref name="count"/> messages with <paramref name="subject"/> was accepted and traced.</summary>
    private async Task AcceptedAsync(string subject, int count)
    {
        await Poll.UntilAsync(async () => (await TraceQuery.ListAsync(Postern, 5000)).Count(t => t.Subject == subject) == count,
            TimeSpan.FromSeconds(30), $"{count} '{subject}' messages accepted", Diagnostics);
    }
}
