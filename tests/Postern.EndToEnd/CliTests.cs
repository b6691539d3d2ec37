using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>The `postern` command line against a data directory, and a running server picking up its changes.</summary>
public sealed class CliTests(ITestOutputHelper output) : EndToEndTest(output)
{
    [Theory]
    [InlineData("not-a-guid", "eu", "not-a-guid")]
    [InlineData("6f1c8c2e-3b1a-4d8e-9a53-0c2b7e1f4a10", "mars", "mars")]
    public async Task Tenant_add_with_a_bad_value_fails_with_one_line_naming_it(string tenantId, string region, string named)
    {
        var result = await Postern.RunCliAsync("tenant", "add", "contoso", "--tenant-id", tenantId, "--region", region);
        Assert.True(result.ExitCode != 0, result.ToString());
        var lines = result.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, "expected one line on stderr: " + result);
        Assert.Contains(named, lines[0]);
        Assert.DoesNotContain("contoso", (await Postern.RunCliAsync("tenant", "list")).EnsureSuccess().StdOut);
    }

    [Fact]
    public async Task Domain_add_refuses_a_fourth_mta()
    {
        (await Postern.RunCliAsync("tenant", "add", "contoso", "--tenant-id", Guid.NewGuid().ToString(), "--region", "eu")).EnsureSuccess();
        var result = await Postern.RunCliAsync("domain", "add", "contoso", "contoso.test",
            "--mta", "mx1.contoso.test", "--mta", "mx2.contoso.test", "--mta", "mx3.contoso.test", "--mta", "mx4.contoso.test");
        Assert.True(result.ExitCode != 0, result.ToString());
        var line = Assert.Single(result.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("mx4.contoso.test", line);
        Assert.DoesNotContain("contoso.test", (await Postern.RunCliAsync("domain", "list", "contoso")).EnsureSuccess().StdOut);
    }

    [Theory]
    [InlineData("tenant list")]
    [InlineData("trace list")]
    [InlineData("serve")]
    public async Task A_data_dir_that_is_a_regular_file_fails_with_one_line_naming_it(string command)
    {
        var file = Directory.PathOf("not-a-directory");
        await File.WriteAllTextAsync(file, "a regular file\n");
        string[] args = [.. command.Split(' '), "--data-dir", file];
        if (command == "serve")
            args = [.. args, "--smtp", $"127.0.0.1:{FreePort.Next()}"];

        var result = await Postern.RunCliVerbatimAsync(Directory.Path, args);
        AssertOneErrorLineNaming(file, result);
        Assert.Equal("a regular file\n", await File.ReadAllTextAsync(file));
    }

    [Fact]
    public async Task A_data_dir_holding_a_corrupt_database_fails_with_one_line_naming_the_database()
    {
        var dataDir = Directory.Sub("corrupt");
        var database = Path.Combine(dataDir, "postern.db");
        await File.WriteAllBytesAsync(database, Enumerable.Range(0, 8192).Select(i => (byte)(i * 7)).ToArray());

        var result = await Postern.RunCliVerbatimAsync(Directory.Path, "tenant", "list", "--data-dir", dataDir);
        AssertOneErrorLineNaming(database, result);
    }

    [Fact]
    public async Task Names_a_tenant_by_its_id_in_tenant_show_and_trace_list()
    {
        var relay = await StartRelayAsync();
        var toContoso = await relay.SendPlainAsync("alice@contoso.test", "for contoso", relay.Contoso.KeyHeader);
        var toFabrikam = await relay.SendPlainAsync("bob@fabrikam.test", "for fabrikam", relay.Fabrikam.KeyHeader);
        Assert.True(toContoso.QueueId is not null && toFabrikam.QueueId is not null, $"{toContoso}\n{toFabrikam}");
        await TraceQuery.WaitForAsync(Postern, toContoso.QueueId!, diagnostics: Diagnostics);
        await TraceQuery.WaitForAsync(Postern, toFabrikam.QueueId!, diagnostics: Diagnostics);

        var show = (await Postern.RunCliAsync("tenant", "show", relay.Contoso.TenantId)).EnsureSuccess().StdOut;
        Assert.Contains("Name: contoso", show);
        Assert.Contains($"Tenant id: {relay.Contoso.TenantId}", show);
        Assert.Contains("contoso.test", show);
        Assert.DoesNotContain("fabrikam", show);

        foreach (var name in new[] { relay.Contoso.TenantId, relay.Contoso.TenantId.ToUpperInvariant(), "contoso" })
        {
            var trace = (await Postern.RunCliAsync("trace", "list", "--tenant", name)).EnsureSuccess().StdOut;
            Assert.Contains(toContoso.QueueId!, trace);
            Assert.DoesNotContain(toFabrikam.QueueId!, trace);
        }
        var unknown = await Postern.RunCliAsync("trace", "list", "--tenant", "00000000-0000-0000-0000-000000000001");
        AssertOneErrorLineNaming("00000000-0000-0000-0000-000000000001", unknown);
    }

    [Fact]
    public async Task Queue_retry_all_delivers_every_deferred_message_now()
    {
        var tenantMta = Own(SmtpSink.CreateStopped(Directory, "tenant"));
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{tenantMta.Port}");
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            DeliveryRequireTls = false,
            RetryDelays = [TimeSpan.FromHours(1)], // only `queue retry` can bring them out within the test
        };
        await Postern.StartServeAsync(config);
        var ids = new List<string>();
        foreach (var subject in new[] { "first deferred", "second deferred" })
        {
            var sent = await Swaks.SendAsync(config.First.Port, "sender@external.test", "alice@contoso.test", subject, "--add-header", contoso.KeyHeader);
            Assert.True(sent.QueueId is not null, sent.ToString());
            ids.Add(sent.QueueId!);
        }
        await Poll.UntilAsync(async () => (await TraceQuery.ListAsync(Postern)).Count(e => ids.Contains(e.QueueId) && e.State == "deferred") == ids.Count,
            TimeSpan.FromSeconds(30), "both messages deferred", Diagnostics);

        await tenantMta.StartAsync();
        (await Postern.RunCliAsync("queue", "retry", "--all")).EnsureSuccess();
        var delivered = await tenantMta.WaitForMessagesAsync(ids.Count, TimeSpan.FromSeconds(20), Diagnostics);
        Assert.Equal(ids.Order(), delivered.Select(m => m.Mail.FirstReceivedId()).Order());
        await Poll.UntilAsync(async () => (await Postern.RunCliAsync("queue", "list")).EnsureSuccess().StdOut.Contains("The queue is empty."),
            TimeSpan.FromSeconds(20), "the queue to empty", Diagnostics);
    }

    [Fact]
    public async Task Dkim_show_prints_the_txt_record_and_both_halves_of_the_cname_delegation_to_the_configured_zone()
    {
        await Postern.CreateTenantAsync("contoso", "contoso.test", "127.0.0.1:25");
        var config = Directory.PathOf("postern.json");
        await File.WriteAllTextAsync(config, """
            { "Postern": { "ProductDomain": "relay.operator.test", "Signing": { "DkimDelegationZone": "keys.operator.test" } } }
            """);

        var rotate = (await Postern.RunCliAsync("dkim", "rotate", "contoso", "contoso.test", "--config", config)).EnsureSuccess();
        var made = Assert.Single(DkimShow.Parse(rotate.StdOut));
        var show = (await Postern.RunCliAsync("dkim", "show", "contoso", "contoso.test", "--config", config)).EnsureSuccess();
        var key = Assert.Single(DkimShow.Parse(show.StdOut));
        Assert.Equal(made, key);

        var name = $"{key.Selector}._domainkey.contoso.test";
        Assert.Equal("pending", key.State);
        Assert.Equal(name, key.TenantTxt.Name);
        Assert.StartsWith("v=DKIM1; k=rsa; p=", key.TenantTxt.Value);
        // The tenant points its selector into the configured zone; the operator serves the same key there.
        Assert.Equal((name, $"{name}.keys.operator.test"), key.TenantCname);
        Assert.Equal((key.TenantCname.Target, key.TenantTxt.Value), key.OperatorTxt);

        // --delegation-zone wins over the file; without a file the POSTERN__ variables serve reads apply; else the default.
        var overridden = (await Postern.RunCliAsync("dkim", "show", "contoso", "contoso.test", "--config", config, "--delegation-zone", "other.operator.test.")).EnsureSuccess();
        Assert.Equal($"{name}.other.operator.test", Assert.Single(DkimShow.Parse(overridden.StdOut)).TenantCname.Target);
        Postern.Environment["Postern__Signing__DkimDelegationZone"] = "env.operator.test";
        var fromEnvironment = (await Postern.RunCliAsync("dkim", "show", "contoso", "contoso.test")).EnsureSuccess();
        Assert.Equal($"{name}.env.operator.test", Assert.Single(DkimShow.Parse(fromEnvironment.StdOut)).OperatorTxt.Name);
        Postern.Environment.Remove("Postern__Signing__DkimDelegationZone");
        var byDefault = (await Postern.RunCliAsync("dkim", "show", "contoso", "contoso.test")).EnsureSuccess();
        Assert.Equal($"{name}.dkim.postern.example", Assert.Single(DkimShow.Parse(byDefault.StdOut)).TenantCname.Target);
    }

    [Fact]
    public async Task Dkim_show_with_a_bad_configured_delegation_zone_fails_with_one_line_naming_the_setting()
    {
        await Postern.CreateTenantAsync("contoso", "contoso.test", "127.0.0.1:25");
        (await Postern.RunCliAsync("dkim", "rotate", "contoso", "contoso.test")).EnsureSuccess();
        var config = Directory.PathOf("postern.json");
        await File.WriteAllTextAsync(config, """{ "Postern": { "Signing": { "DkimDelegationZone": "not a zone" } } }""");

        var result = await Postern.RunCliAsync("dkim", "show", "contoso", "contoso.test", "--config", config);
        AssertOneErrorLineNaming("Postern:Signing:DkimDelegationZone 'not a zone'", result);
    }

    [Fact]
    public async Task Dkim_rotate_switch_with_no_pending_key_fails_with_one_line_naming_the_domain()
    {
        await Postern.CreateTenantAsync("contoso", "contoso.test", "127.0.0.1:25");
        AssertOneErrorLineNaming("'contoso.test' has no pending DKIM key", await Postern.RunCliAsync("dkim", "rotate", "contoso", "contoso.test", "--switch"));

        (await Postern.RunCliAsync("dkim", "rotate", "contoso", "contoso.test")).EnsureSuccess();
        (await Postern.RunCliAsync("dkim", "rotate", "contoso", "contoso.test", "--switch")).EnsureSuccess();
        // The pending key was used up by the first switch.
        AssertOneErrorLineNaming("'contoso.test' has no pending DKIM key", await Postern.RunCliAsync("dkim", "rotate", "contoso", "contoso.test", "--switch"));
    }

    [Fact]
    public async Task Dkim_rotate_while_a_key_is_pending_fails_with_one_line_naming_the_pending_selector()
    {
        await Postern.CreateTenantAsync("contoso", "contoso.test", "127.0.0.1:25");
        var pending = Assert.Single(DkimShow.Parse((await Postern.RunCliAsync("dkim", "rotate", "contoso", "contoso.test")).EnsureSuccess().StdOut));

        AssertOneErrorLineNaming($"'contoso.test' already has a pending DKIM key (selector {pending.Selector})",
            await Postern.RunCliAsync("dkim", "rotate", "contoso", "contoso.test"));
        Assert.Equal([pending], DkimShow.Parse((await Postern.RunCliAsync("dkim", "show", "contoso", "contoso.test")).EnsureSuccess().StdOut));
    }

    [Fact]
    public async Task Dkim_show_lists_the_active_key_then_the_pending_one_then_the_retired_ones_newest_first()
    {
        await Postern.CreateTenantAsync("contoso", "contoso.test", "127.0.0.1:25");
        var made = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            made.Add(Assert.Single(DkimShow.Parse((await Postern.RunCliAsync("dkim", "rotate", "contoso", "contoso.test")).EnsureSuccess().StdOut)).Selector);
            (await Postern.RunCliAsync("dkim", "rotate", "contoso", "contoso.test", "--switch")).EnsureSuccess();
        }
        made.Add(Assert.Single(DkimShow.Parse((await Postern.RunCliAsync("dkim", "rotate", "contoso", "contoso.test")).EnsureSuccess().StdOut)).Selector);

        var show = (await Postern.RunCliAsync("dkim", "show", "contoso", "contoso.test")).EnsureSuccess();
        Assert.Equal([(made[2], "active"), (made[3], "pending"), (made[1], "retired"), (made[0], "retired")],
            DkimShow.Parse(show.StdOut).Select(k => (k.Selector, k.State)));
    }

    private static void AssertOneErrorLineNaming(string value, CommandResult result)
    {
        Assert.True(result.ExitCode != 0, result.ToString());
        var lines = result.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, "expected exactly one line on stderr: " + result);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(value, lines[0]);
        Assert.DoesNotContain("   at ", result.StdOut + result.StdErr); // no stack trace anywhere
    }

    [Fact]
    public async Task Lists_tenants_and_domains_with_mtas_in_order()
    {
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", "mx1.contoso.test:2525", "mx2.contoso.test");
        var tenants = (await Postern.RunCliAsync("tenant", "list")).EnsureSuccess().StdOut;
        Assert.Contains("contoso", tenants);
        Assert.Contains(contoso.TenantId, tenants);
        var domains = (await Postern.RunCliAsync("domain", "list", "contoso")).EnsureSuccess().StdOut;
        Assert.Contains("contoso.test", domains);
        var first = domains.IndexOf("mx1.contoso.test", StringComparison.Ordinal);
        var second = domains.IndexOf("mx2.contoso.test", StringComparison.Ordinal);
        Assert.True(first >= 0 && second > first, domains);
        var show = (await Postern.RunCliAsync("tenant", "show", "contoso")).EnsureSuccess().StdOut;
        Assert.DoesNotContain(contoso.RelayKey, show); // shown once by `relay enable`, stored only as a hash
        foreach (var file in System.IO.Directory.GetFiles(Postern.DataDirectory, "*", SearchOption.AllDirectories))
            Assert.False(File.ReadAllText(file, System.Text.Encoding.Latin1).Contains(contoso.RelayKey), $"relay key stored in clear in {file}");
    }

    [Fact]
    public async Task Running_server_picks_up_tenant_domain_and_relay_changes_without_restart()
    {
        var sink = Own(await SmtpSink.StartAsync(Directory));
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            DeliveryRequireTls = false,
        };
        await Postern.StartServeAsync(config);
        Assert.False(await RecipientAcceptedAsync(config.First.Port), "contoso.test is not registered yet");

        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{sink.Port}");
        // "within about a second": allow three.
        await Poll.UntilAsync(() => RecipientAcceptedAsync(config.First.Port), TimeSpan.FromSeconds(3),
            "the running server to accept RCPT for the new domain", Diagnostics);
        var sent = await Swaks.SendAsync(config.First.Port, "sender@external.test", "alice@contoso.test", "after reload", "--add-header", contoso.KeyHeader);
        Assert.True(sent.QueueId is not null, sent.ToString());
        await sink.WaitForMessagesAsync(1, TimeSpan.FromSeconds(30), Diagnostics);

        (await Postern.RunCliAsync("relay", "disable", "contoso")).EnsureSuccess();
        await Poll.UntilAsync(async () => !await RecipientAcceptedAsync(config.First.Port), TimeSpan.FromSeconds(3),
            "the running server to refuse RCPT once the relay is disabled", Diagnostics);
    }

    [Fact]
    public async Task Rotated_key_replaces_the_old_one_after_the_grace_period()
    {
        var sink = Own(await SmtpSink.StartAsync(Directory));
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("plain", FreePort.Next(), RequireTls: false)],
            DeliveryRequireTls = false,
        };
        var contoso = await Postern.CreateTenantAsync("contoso", "contoso.test", $"127.0.0.1:{sink.Port}");
        var rotated = (await Postern.RunCliAsync("relay", "rotate", "contoso", "--grace", "00:00:00")).EnsureSuccess().LastLine;
        Assert.NotEqual(contoso.RelayKey, rotated);
        await Postern.StartServeAsync(config);

        var old = await Swaks.SendAsync(config.First.Port, "sender@external.test", "alice@contoso.test", "old key", "--add-header", contoso.KeyHeader);
        Assert.True(old.HasReply("550 5.7.1"), old.ToString());
        var current = await Swaks.SendAsync(config.First.Port, "sender@external.test", "alice@contoso.test", "new key", "--add-header", $"X-Postern-Key: {rotated}");
        Assert.True(current.QueueId is not null, current.ToString());
    }

    private static async Task<bool> RecipientAcceptedAsync(int port)
    {
        await using var client = await RawSmtpClient.ConnectAsync(port);
        await client.HelloAsync();
        await client.CommandAsync("MAIL FROM:<sender@external.test>");
        var rcpt = await client.CommandAsync("RCPT TO:<alice@contoso.test>");
        return rcpt.IsPositive;
    }
}
