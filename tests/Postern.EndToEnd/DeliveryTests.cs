using System.Text.Json;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>Outbound by MX, bounces and failure records, handoff listeners, the queue commands, and MX-based domain set-up.</summary>
public sealed class DeliveryTests(ITestOutputHelper output) : EndToEndTest(output)
{
    private static PosternConfig Config(int mxPort, string dns, bool handoff = false, IReadOnlyList<TimeSpan>? retryDelays = null, TimeSpan? maxAge = null) => new()
    {
        Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false, Handoff: handoff)],
        DeliveryRequireTls = false,
        MxPort = mxPort,
        DnsServers = [dns],
        RetryDelays = retryDelays ?? [TimeSpan.FromSeconds(1)],
        MaxAge = maxAge ?? TimeSpan.FromDays(2),
    };

    private async Task<JsonElement> TraceAsync(string queueId)
    {
        JsonElement found = default;
        await Poll.UntilAsync(async () =>
        {
            var json = (await Postern.RunCliAsync("trace", "list", "--json")).EnsureSuccess().StdOut;
            foreach (var record in JsonDocument.Parse(json).RootElement.EnumerateArray())
            {
                if (record.GetProperty("queueId").GetString() == queueId && record.GetProperty("state").GetString() is not ("queued" or "deferred"))
                {
                    found = record.Clone();
                    return true;
                }
            }
            return false;
        }, TimeSpan.FromSeconds(30), $"a final trace state for {queueId}", Diagnostics);
        return found;
    }

    [Fact]
    public async Task Outbound_mail_goes_to_the_recipients_mx_without_the_secret_loop_token()
    {
        var internet = Own(await SmtpSink.StartAsync(Directory, "internet"));
        var tenantMta = Own(await SmtpSink.StartAsync(Directory, "tenant"));
        var dns = Own(await DnsServer.StartAsync(Directory, DnsServer.CatchAllZone));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{tenantMta.Port}");
        var config = Config(internet.Port, dns.EndPoint);
        await Postern.StartServeAsync(config);

        var sent = await Swaks.SendAsync(config.First.Port, "alice@contoso.test", "bob@remote.test", "outbound", "--add-header", contoso.KeyHeader);
        Assert.True(sent.QueueId is not null, sent.ToString());
        var message = Assert.Single(await internet.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        Assert.Equal(["<bob@remote.test>"], message.RecipientArgs);
        Assert.False(message.Mail.HasHeader("X-Postern-Loop"), "the loop token is a secret: it must never reach the Internet");
        Assert.False(message.Mail.HasHeader("X-Postern-Key"));
        Assert.Equal(0, tenantMta.Count);
        Assert.Equal("delivered", (await TraceAsync(sent.QueueId!)).GetProperty("state").GetString());
    }

    [Fact]
    public async Task Outbound_permanent_failure_bounces_a_delivery_status_notification_to_the_sender()
    {
        var internet = Own(await SmtpSink.StartAsync(Directory, "internet", extraArguments: ["-f", "RCPT", "-B", "550 5.1.1 No such user"]));
        var tenantMta = Own(await SmtpSink.StartAsync(Directory, "tenant"));
        var dns = Own(await DnsServer.StartAsync(Directory, DnsServer.CatchAllZone));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{tenantMta.Port}");
        var config = Config(internet.Port, dns.EndPoint);
        await Postern.StartServeAsync(config);

        var sent = await Swaks.SendAsync(config.First.Port, "alice@contoso.test", "nobody@remote.test", "will bounce", "--add-header", contoso.KeyHeader);
        Assert.True(sent.QueueId is not null, sent.ToString());

        var dsn = Assert.Single(await tenantMta.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        Assert.Equal("<>", dsn.MailFromArgs.Split(' ')[0]);
        Assert.Equal(["<alice@contoso.test>"], dsn.RecipientArgs);
        Assert.Contains("multipart/report", dsn.Mail.Header("Content-Type"));
        Assert.Contains("report-type=delivery-status", dsn.Mail.Header("Content-Type"));
        Assert.Contains("Final-Recipient: rfc822; nobody@remote.test", dsn.Mail.Text);
        Assert.Contains("Status: 5.1.1", dsn.Mail.Text);
        Assert.Equal(contoso.LoopToken, dsn.Mail.Header("X-Postern-Loop"));
        var trace = await TraceAsync(sent.QueueId!);
        Assert.Equal("failed", trace.GetProperty("state").GetString());
        Assert.Contains("550", trace.GetProperty("reason").GetString());
    }

    [Fact]
    public async Task Recipients_a_policy_rule_rejects_after_data_get_a_dsn_to_the_sender_and_the_others_are_delivered()
    {
        var internet = Own(await SmtpSink.StartAsync(Directory, "internet"));
        var tenantMta = Own(await SmtpSink.StartAsync(Directory, "tenant"));
        var dns = Own(await DnsServer.StartAsync(Directory, DnsServer.CatchAllZone));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{tenantMta.Port}");
        (await Postern.RunCliAsync("policy", "add", "contoso", "--name", "no-competitors", "--direction", "outbound",
            "--recipient", "*@competitor.test", "--action", "reject", "--reply", "Mail to competitors is not allowed")).EnsureSuccess();
        var config = Config(internet.Port, dns.EndPoint);
        await Postern.StartServeAsync(config);

        // One transaction, two recipients: the client hears 250 (one of them is accepted), so the rejected one
        // must come back to the sender as a delivery status notification, not vanish.
        var sent = await Swaks.SendAsync(config.First.Port, "alice@contoso.test", "bob@remote.test,eve@competitor.test", "quarterly figures",
            "--add-header", contoso.KeyHeader);
        Assert.True(sent.QueueId is not null, sent.ToString());

        var delivered = Assert.Single(await internet.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        Assert.Equal(["<bob@remote.test>"], delivered.RecipientArgs);
        var dsn = Assert.Single(await tenantMta.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        Assert.Equal("<>", dsn.MailFromArgs.Split(' ')[0]);
        Assert.Equal(["<alice@contoso.test>"], dsn.RecipientArgs);
        Assert.Contains("report-type=delivery-status", dsn.Mail.Header("Content-Type"));
        Assert.Contains("Final-Recipient: rfc822; eve@competitor.test", dsn.Mail.Text);
        Assert.DoesNotContain("Final-Recipient: rfc822; bob@remote.test", dsn.Mail.Text);
        Assert.Contains("no-competitors", dsn.Mail.Text);
        Assert.Contains("Subject: quarterly figures", dsn.Mail.Text);
        Assert.Equal(1, internet.Count);
    }

    [Fact]
    public async Task Outbound_mail_that_cannot_be_delivered_before_it_expires_bounces_with_the_last_reason()
    {
        var internet = Own(SmtpSink.CreateStopped(Directory, "internet"));
        var tenantMta = Own(await SmtpSink.StartAsync(Directory, "tenant"));
        var dns = Own(await DnsServer.StartAsync(Directory, DnsServer.CatchAllZone));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{tenantMta.Port}");
        var config = Config(internet.Port, dns.EndPoint, retryDelays: [TimeSpan.FromSeconds(1)], maxAge: TimeSpan.FromSeconds(4));
        await Postern.StartServeAsync(config);

        var sent = await Swaks.SendAsync(config.First.Port, "alice@contoso.test", "bob@remote.test", "never arrives", "--add-header", contoso.KeyHeader);
        Assert.True(sent.QueueId is not null, sent.ToString());

        var dsn = Assert.Single(await tenantMta.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics));
        Assert.Equal(["<alice@contoso.test>"], dsn.RecipientArgs);
        Assert.Contains("Final-Recipient: rfc822; bob@remote.test", dsn.Mail.Text);
        Assert.Contains("expired after", dsn.Mail.Text);
        Assert.Contains("ConnectionRefused", dsn.Mail.Text);
        Assert.Equal("failed", (await TraceAsync(sent.QueueId!)).GetProperty("state").GetString());
        Assert.Equal(0, internet.Count);
    }

    [Fact]
    public async Task Inbound_permanent_failure_is_recorded_in_the_trace_and_bounces_nothing()
    {
        var tenantMta = Own(await SmtpSink.StartAsync(Directory, "tenant", extraArguments: ["-f", "RCPT", "-B", "550 5.1.1 No such mailbox"]));
        var dns = Own(await DnsServer.StartAsync(Directory, DnsServer.CatchAllZone));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{tenantMta.Port}");
        var config = Config(tenantMta.Port, dns.EndPoint);
        await Postern.StartServeAsync(config);

        var sent = await Swaks.SendAsync(config.First.Port, "sender@external.test", "ghost@contoso.test", "inbound fails", "--add-header", contoso.KeyHeader);
        Assert.True(sent.QueueId is not null, sent.ToString());
        var trace = await TraceAsync(sent.QueueId!);
        Assert.Equal("failed", trace.GetProperty("state").GetString());
        Assert.Contains("No such mailbox", trace.GetProperty("reason").GetString());
        var attempt = Assert.Single(trace.GetProperty("attempts").EnumerateArray());
        Assert.Equal($"127.0.0.1:{tenantMta.Port}", attempt.GetProperty("server").GetString());
        Assert.Equal(0, tenantMta.Count);
        var queue = (await Postern.RunCliAsync("queue", "list")).EnsureSuccess();
        Assert.Contains("The queue is empty.", queue.StdOut);
    }

    [Fact]
    public async Task Handoff_listener_answers_only_after_the_next_hop_accepted_and_451_when_it_could_not()
    {
        var tenantMta = Own(SmtpSink.CreateStopped(Directory, "tenant"));
        var dns = Own(await DnsServer.StartAsync(Directory, DnsServer.CatchAllZone));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{tenantMta.Port}");
        var config = Config(tenantMta.Port, dns.EndPoint, handoff: true);
        await Postern.StartServeAsync(config);

        var refused = await Swaks.SendAsync(config.First.Port, "sender@external.test", "alice@contoso.test", "next hop down", "--add-header", contoso.KeyHeader);
        Assert.True(refused.HasReply("451 4.4.1"), refused.ToString());

        await tenantMta.StartAsync();
        var accepted = await Swaks.SendAsync(config.First.Port, "sender@external.test", "alice@contoso.test", "next hop up", "--add-header", contoso.KeyHeader);
        Assert.True(accepted.HasReply("250 2.0.0 Ok: delivered as"), accepted.ToString());
        var message = Assert.Single(await tenantMta.WaitForMessagesAsync(1, TimeSpan.FromSeconds(10), Diagnostics));
        Assert.Contains("Subject: next hop up", message.Mail.HeaderSection);
        // The refused message was never queued: nothing else arrives and nothing waits.
        Assert.Contains("The queue is empty.", (await Postern.RunCliAsync("queue", "list")).EnsureSuccess().StdOut);
        Assert.Equal(1, tenantMta.Count);
    }

    [Fact]
    public async Task Queue_retry_delivers_a_deferred_message_before_its_next_scheduled_attempt()
    {
        var tenantMta = Own(SmtpSink.CreateStopped(Directory, "tenant"));
        var dns = Own(await DnsServer.StartAsync(Directory, DnsServer.CatchAllZone));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{tenantMta.Port}");
        var config = Config(tenantMta.Port, dns.EndPoint, retryDelays: [TimeSpan.FromHours(1)]);
        await Postern.StartServeAsync(config);

        var sent = await Swaks.SendAsync(config.First.Port, "sender@external.test", "alice@contoso.test", "retry me", "--add-header", contoso.KeyHeader);
        Assert.True(sent.QueueId is not null, sent.ToString());
        await Poll.UntilAsync(async () =>
        {
            var list = (await Postern.RunCliAsync("queue", "list")).EnsureSuccess().StdOut;
            return list.Contains(sent.QueueId!) && list.Contains("deferred") && list.Contains("ConnectionRefused");
        }, TimeSpan.FromSeconds(30), "the message deferred in the queue with the reason", Diagnostics);

        await tenantMta.StartAsync();
        var retry = (await Postern.RunCliAsync("queue", "retry", sent.QueueId!)).EnsureSuccess();
        Assert.Contains(sent.QueueId!, retry.StdOut);
        var message = Assert.Single(await tenantMta.WaitForMessagesAsync(1, TimeSpan.FromSeconds(20), Diagnostics));
        Assert.Equal(sent.QueueId, message.Mail.FirstReceivedId());

        var unknown = await Postern.RunCliAsync("queue", "retry", "0000000000000");
        Assert.NotEqual(0, unknown.ExitCode);
        Assert.Contains("0000000000000", unknown.StdErr);
    }

    [Fact]
    public async Task Domain_resolve_fills_mtas_from_a_microsoft_365_mx_and_refuses_another_gateway()
    {
        var dns = Own(await DnsServer.StartAsync(Directory, """
            $TTL 300
            contoso.test.   IN MX 0  contoso-test.mail.protection.outlook.com.
            gateway.test.   IN MX 10 mx1.othergateway.test.
            """));
        (await Postern.RunCliAsync("tenant", "add", "contoso", "--tenant-id", Guid.NewGuid().ToString(), "--region", "eu")).EnsureSuccess();

        var resolved = (await Postern.RunCliAsync("domain", "resolve", "contoso", "contoso.test", "--dns", dns.EndPoint)).EnsureSuccess();
        Assert.Contains("contoso-test.mail.protection.outlook.com:25", resolved.StdOut);
        Assert.Contains("contoso-test.mail.protection.outlook.com:25", (await Postern.RunCliAsync("domain", "list", "contoso")).EnsureSuccess().StdOut);

        var foreign = await Postern.RunCliAsync("domain", "resolve", "contoso", "gateway.test", "--dns", dns.EndPoint);
        Assert.NotEqual(0, foreign.ExitCode);
        Assert.Contains("mx1.othergateway.test", foreign.StdErr);
        Assert.Contains("loop", foreign.StdErr);
        Assert.DoesNotContain("gateway.test", (await Postern.RunCliAsync("domain", "list", "contoso")).EnsureSuccess().StdOut);
    }
}
