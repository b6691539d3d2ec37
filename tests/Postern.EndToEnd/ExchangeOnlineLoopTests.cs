using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>
/// Issue 8's end-to-end tests: real Postern, real SMTP, the simulated Exchange Online tenant (its connectors and
/// rules as `postern m365 apply` made them), mail from the Internet and from mailboxes.
/// </summary>
public sealed class ExchangeOnlineLoopTests(ITestOutputHelper output) : EndToEndTest(output)
{
    private const string ExternalSender = "sender@external.test";

    private async Task<ExchangeOnlineLoop> StartLoopAsync(params LoopTenantSpec[] tenants)
    {
        var loop = Own(await ExchangeOnlineLoop.StartAsync(Directory, Postern, tenants));
        AddDiagnostics(loop.Diagnostics);
        return loop;
    }

    [Theory]
    [InlineData("integrated")]
    [InlineData("relay")]
    [InlineData("relay-legacy")]
    public async Task Internet_mail_goes_through_Postern_once_and_reaches_the_mailbox_scanned_sealed_and_without_Postern_s_headers(string profile)
    {
        var loop = await StartLoopAsync(new LoopTenantSpec("contoso", "contoso.test", profile));

        var sent = await loop.SendFromInternetAsync(ExternalSender, "alice@contoso.test", $"Inbound {profile}");
        Assert.True(sent.ExitCode == 0, sent.ToString());

        var delivered = Assert.Single(await loop.WaitForMailboxAsync("alice@contoso.test"));
        Assert.Equal($"Inbound {profile}", delivered.Header("Subject"));
        Assert.False(delivered.HasHeader("X-Postern-Loop"), delivered.HeaderSection);
        Assert.False(delivered.HasHeader("X-Postern-Key"), delivered.HeaderSection);
        Assert.NotNull(delivered.Header("X-Postern-Verdict"));
        // Postern's ARC set on top of the one Exchange Online sealed when it sent the message to Postern.
        Assert.Contains(delivered.Headers("ARC-Seal"), s => s.Contains("i=2") && s.Contains("d=arc.postern.example"));
        Assert.Contains(delivered.Headers("ARC-Seal"), s => s.Contains("i=1") && s.Contains("d=microsoft.com"));

        var trace = Assert.Single(await TraceQuery.ListAsync(Postern));
        Assert.Equal("inbound", trace.Direction);
        Assert.Equal("delivered", trace.State);
        // Handed back with the tenant's own certificate, from Postern's egress address.
        var tenant = loop.Tenants["contoso"];
        Assert.Contains(loop.Transport.Log.Connections, c => c.Client.ToString() == ExchangeOnlineLoop.PosternEgress
            && c.CertificateNames.Contains($"{tenant.TenantId}.eu.postern.example"));
        await Task.Delay(1500);
        Assert.Single(loop.Mailbox("alice@contoso.test"));
    }

    [Fact]
    public async Task Outbound_mail_leaves_through_Exchange_Online_via_m365_and_straight_to_the_Internet_direct()
    {
        var loop = await StartLoopAsync(
            new LoopTenantSpec("contoso", "contoso.test", "integrated", Outbound: "via-m365"),
            new LoopTenantSpec("fabrikam", "fabrikam.test", "relay", Outbound: "direct"));

        loop.SendFromMailbox("contoso", "alice@contoso.test", "partner@outside.test", "Via Microsoft 365");
        loop.SendFromMailbox("fabrikam", "bob@fabrikam.test", "partner@outside.test", "Direct");

        var internet = await loop.WaitForMailboxAsync("Internet", 2);
        var viaM365 = Assert.Single(internet, m => m.Header("Subject") == "Via Microsoft 365");
        var direct = Assert.Single(internet, m => m.Header("Subject") == "Direct");
        foreach (var copy in internet)
        {
            Assert.Equal("partner@outside.test", copy.Header("X-Envelope-To"));
            Assert.False(copy.HasHeader("X-Postern-Loop"), copy.HeaderSection);
            Assert.False(copy.HasHeader("X-Postern-Key"), copy.HeaderSection);
        }
        // via-m365: Postern handed it back to contoso's Exchange Online, which sent it on (its Received line is on top);
        // direct: Postern's own delivery to the recipient's MX, DKIM-signed or not, but never through the tenant again.
        Assert.Contains(".mail.protection.outlook.com", viaM365.Headers("Received")[0]);
        Assert.Contains("postern.test", direct.Headers("Received")[0]);
        Assert.Contains(loop.Transport.Log.Events, e => e.What == "received" && e.Tenant == "contoso.onmicrosoft.com"
            && e.Detail.Contains("on OnPremises connector") && e.Detail.Contains("certificate domain " + loop.Tenants["contoso"].TenantId));
        var traces = await TraceQuery.ListAsync(Postern);
        Assert.Equal(2, traces.Count);
        Assert.All(traces, t => Assert.Equal("outbound", t.Direction));

        // The relay profile's Partner connector identifies Postern without locking the tenant's MX out: Internet mail still enters.
        var inbound = await loop.SendFromInternetAsync(ExternalSender, "bob@fabrikam.test", "Straight from the Internet");
        Assert.True(inbound.ExitCode == 0, inbound.ToString());
        await loop.WaitForMailboxAsync("bob@fabrikam.test");
    }

    [Fact]
    public async Task The_connector_the_old_relay_profile_made_would_refuse_the_tenant_s_Internet_mail_and_the_emulator_shows_it()
    {
        var loop = await StartLoopAsync(new LoopTenantSpec("contoso", "contoso.test", "relay"));
        // What seed 003 with RestrictDomainsToIPAddresses $true did (Microsoft: "Reject mail not routed through MX").
        loop.Exchange("contoso").Invoke("Set-InboundConnector", new JsonObject { ["Identity"] = "From Postern", ["RestrictDomainsToIPAddresses"] = true });

        var refused = await loop.SendFromInternetAsync(ExternalSender, "alice@contoso.test", "Locked out");

        Assert.True(refused.HasReply("550 5.7.51"), refused.ToString());
        var verify = await Postern.RunCliAsync("m365", "verify", "contoso", "--config", Postern.ConfigPath!);
        Assert.Equal(2, verify.ExitCode);
        Assert.Contains("RestrictDomainsToIPAddresses", verify.StdOut);
    }

    [Fact]
    public async Task Two_Postern_tenants_mailing_each_other_each_copy_is_attributed_to_the_recipient_s_tenant_and_passes_Postern_once_per_direction()
    {
        var loop = await StartLoopAsync(
            new LoopTenantSpec("contoso", "contoso.test", "integrated", Outbound: "direct"),
            new LoopTenantSpec("fabrikam", "fabrikam.test", "integrated", Outbound: "direct"));

        loop.SendFromMailbox("contoso", "alice@contoso.test", "bob@fabrikam.test", "Contoso to Fabrikam");
        var atBob = Assert.Single(await loop.WaitForMailboxAsync("bob@fabrikam.test"));
        loop.SendFromMailbox("fabrikam", "bob@fabrikam.test", "alice@contoso.test", "Fabrikam to Contoso");
        var atAlice = Assert.Single(await loop.WaitForMailboxAsync("alice@contoso.test"));

        Assert.Equal("Contoso to Fabrikam", atBob.Header("Subject"));
        Assert.Equal("Fabrikam to Contoso", atAlice.Header("Subject"));
        foreach (var copy in new[] { atBob, atAlice })
        {
            Assert.False(copy.HasHeader("X-Postern-Loop"), copy.HeaderSection);
            Assert.False(copy.HasHeader("X-Postern-Key"), copy.HeaderSection);
        }
        // Each copy Postern handed back came in on the recipient's tenant's connector, by that tenant's certificate.
        var contoso = loop.Tenants["contoso"];
        var fabrikam = loop.Tenants["fabrikam"];
        var returned = loop.Transport.Log.Events.Where(e => e.What == "received" && e.Detail.Contains("on OnPremises connector")).ToList();
        Assert.Equal(2, returned.Count);
        Assert.Contains(returned, e => e.Tenant == "fabrikam.onmicrosoft.com" && e.Detail.Contains("certificate domain " + fabrikam.TenantId));
        Assert.Contains(returned, e => e.Tenant == "contoso.onmicrosoft.com" && e.Detail.Contains("certificate domain " + contoso.TenantId));

        // Once per direction: out for the sender's tenant, in for the recipient's, and nothing more (wait for strays).
        await Task.Delay(TimeSpan.FromSeconds(3));
        var traces = await TraceQuery.ListAsync(Postern);
        Assert.Equal(4, traces.Count);
        Assert.Single(traces, t => t.Subject == "Contoso to Fabrikam" && t.Direction == "outbound" && t.TenantId == contoso.TenantId);
        Assert.Single(traces, t => t.Subject == "Contoso to Fabrikam" && t.Direction == "inbound" && t.TenantId == fabrikam.TenantId);
        Assert.Single(traces, t => t.Subject == "Fabrikam to Contoso" && t.Direction == "outbound" && t.TenantId == fabrikam.TenantId);
        Assert.Single(traces, t => t.Subject == "Fabrikam to Contoso" && t.Direction == "inbound" && t.TenantId == contoso.TenantId);
        Assert.All(traces, t => Assert.Equal("delivered", t.State));
        Assert.Single(loop.Mailbox("bob@fabrikam.test"));
        Assert.Single(loop.Mailbox("alice@contoso.test"));

        // No relay key or loop token in Postern's log, nor in what the emulator recorded, after the whole run.
        var logs = Postern.ReadLog() + "\n" + loop.Diagnostics();
        foreach (var tenant in new[] { contoso, fabrikam })
        {
            Assert.DoesNotContain(tenant.RelayKey, logs);
            Assert.DoesNotContain(tenant.LoopToken, logs, StringComparison.OrdinalIgnoreCase);
        }
    }

    [Fact]
    public async Task With_the_Loop_Check_rule_disabled_Postern_refuses_the_second_pass_with_554_5_4_6_and_verify_names_the_rule()
    {
        var loop = await StartLoopAsync(new LoopTenantSpec("contoso", "contoso.test", "integrated"));
        loop.Exchange("contoso").Invoke("Disable-TransportRule", new JsonObject { ["Identity"] = "Postern Loop Check" });

        var sent = await loop.SendFromInternetAsync(ExternalSender, "alice@contoso.test", "Round and round");
        Assert.True(sent.ExitCode == 0, sent.ToString());

        // Exchange Online sends Postern's copy back to Postern; Postern refuses it and Exchange Online returns it to the sender.
        var ndr = Assert.Single(await loop.WaitForMailboxAsync("Internet"));
        Assert.Equal(ExternalSender, ndr.Header("X-Envelope-To"));
        Assert.Contains("554 5.4.6", ndr.Body);
        Assert.Empty(loop.Mailbox("alice@contoso.test"));
        var traces = await TraceQuery.ListAsync(Postern);
        Assert.Contains(traces, t => t.State == "delivered" && t.Direction == "inbound");
        Assert.Contains(traces, t => t.State == "refused" && (t.Reason ?? "").Contains("5.4.6"));
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Equal(2, (await TraceQuery.ListAsync(Postern)).Count);

        var verify = await Postern.RunCliAsync("m365", "verify", "contoso", "--config", Postern.ConfigPath!);
        Assert.Equal(2, verify.ExitCode);
        Assert.Matches(new Regex(@"disabled\s+transport rule 'Postern Loop Check'"), verify.StdOut);
    }

    [Fact]
    public async Task A_forged_loop_header_from_the_Internet_is_still_redirected_and_scanned()
    {
        var loop = await StartLoopAsync(new LoopTenantSpec("contoso", "contoso.test", "relay"));

        var sent = await loop.SendFromInternetAsync(ExternalSender, "alice@contoso.test", "Forged loop token",
            "X-Postern-Loop: 0123456789abcdef0123456789abcdef");
        Assert.True(sent.ExitCode == 0, sent.ToString());

        var delivered = Assert.Single(await loop.WaitForMailboxAsync("alice@contoso.test"));
        Assert.NotNull(delivered.Header("X-Postern-Verdict"));
        Assert.DoesNotContain(delivered.Headers("X-Postern-Loop"), v => v.Contains("0123456789abcdef"));
        var trace = Assert.Single(await TraceQuery.ListAsync(Postern));
        Assert.Equal("inbound", trace.Direction);
        Assert.Contains(loop.Transport.Log.Events, e => e.What == "rules" && e.Detail.Contains("'Postern Inbound'"));
    }

    [Fact]
    public async Task Apply_fails_naming_the_connector_Exchange_Online_created_disabled()
    {
        var loop = await StartLoopAsync(new LoopTenantSpec("contoso", "contoso.test", "integrated") { OnPremisesInboundProhibited = true, Provision = false });
        (await loop.ConnectAsync("contoso")).EnsureSuccess();

        var apply = await loop.ApplyAsync("contoso", "integrated", "off");

        Assert.NotEqual(0, apply.ExitCode);
        Assert.Contains("inbound connector 'From Postern'", apply.StdOut + apply.StdErr);
        Assert.Contains("created in a disabled state", apply.StdOut + apply.StdErr);
    }

    [Fact]
    public async Task A_quarantined_message_released_arrives_in_the_mailbox_once()
    {
        var loop = await StartLoopAsync(new LoopTenantSpec("contoso", "contoso.test", "integrated"));
        var reloads = Regex.Matches(Postern.ReadLog(), "Configuration reloaded").Count;
        (await Postern.RunCliAsync("policy", "add", "contoso", "--name", "hold-alice", "--recipient", "alice@contoso.test", "--action", "quarantine")).EnsureSuccess();
        await Poll.UntilAsync(() => Regex.Matches(Postern.ReadLog(), "Configuration reloaded").Count > reloads, TimeSpan.FromSeconds(15), "the policy to load", Diagnostics);

        var sent = await loop.SendFromInternetAsync(ExternalSender, "alice@contoso.test", "Hold me");
        Assert.True(sent.ExitCode == 0, sent.ToString());
        string? id = null;
        await Poll.UntilAsync(async () =>
        {
            var list = (await Postern.RunCliAsync("quarantine", "list")).EnsureSuccess().StdOut.Split('\n');
            id = list.Length > 1 && list[1].Contains("hold-alice") ? list[1].Split(' ', StringSplitOptions.RemoveEmptyEntries)[0] : null;
            return id is not null;
        }, TimeSpan.FromSeconds(60), "the message in the quarantine", Diagnostics);
        Assert.Empty(loop.Mailbox("alice@contoso.test"));

        (await Postern.RunCliAsync("quarantine", "release", id!)).EnsureSuccess();

        var delivered = Assert.Single(await loop.WaitForMailboxAsync("alice@contoso.test"));
        Assert.Equal("Hold me", delivered.Header("Subject"));
        Assert.False(delivered.HasHeader("X-Postern-Loop"), delivered.HeaderSection);
        await Task.Delay(TimeSpan.FromSeconds(3));
        Assert.Single(loop.Mailbox("alice@contoso.test"));
        Assert.NotEqual(0, (await Postern.RunCliAsync("quarantine", "release", id!)).ExitCode);
    }
}
