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
        Assert.Single(result.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
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
