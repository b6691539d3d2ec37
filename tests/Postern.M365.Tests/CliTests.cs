using System.Text.Json.Nodes;

namespace Postern.M365.Tests;

public sealed class CliTests
{
    [Fact]
    public async Task Connect_plan_apply_verify_activate_deactivate_remove_through_the_command_line()
    {
        await using var exchange = await EmulatedTenantHarness.StartAsync();
        using var cli = new CliHarness();

        var connect = await cli.ConnectAsync(exchange);
        Assert.True(connect.Exit == 0, connect.Error);
        Assert.Contains("Reached Exchange Online of tenant 'contoso'", connect.Out, StringComparison.Ordinal);

        var plan = await cli.RunAsync("m365", "plan", "contoso", "--profile", "relay");
        Assert.True(plan.Exit == 0, plan.Error);
        Assert.Contains("transport rule 'Postern Loop Check': create, disabled, as the only rule", plan.Out, StringComparison.Ordinal);
        Assert.Contains("transport rule 'Postern Inbound': create, disabled, below the 2 existing rules", plan.Out, StringComparison.Ordinal);

        var refused = await cli.RunAsync("m365", "apply", "contoso", "--profile", "relay");
        Assert.Equal(1, refused.Exit);
        Assert.Contains("must carry the relay key", refused.Error, StringComparison.Ordinal);
        Assert.Empty(exchange.Changes());

        var apply = await cli.RunAsync("m365", "apply", "contoso", "--profile", "relay", "--relay-key-file", cli.RelayKeyFile);
        Assert.True(apply.Exit == 0, apply.Error + apply.Out);
        Assert.Contains("Done:", apply.Out, StringComparison.Ordinal);

        var verify = await cli.RunAsync("m365", "verify", "contoso");
        Assert.Equal(2, verify.Exit);
        Assert.Contains("disabled  transport rule 'Postern Inbound'", verify.Out, StringComparison.Ordinal);

        var activate = await cli.RunAsync("m365", "activate", "contoso");
        Assert.True(activate.Exit == 0, activate.Error);
        var verified = await cli.RunAsync("m365", "verify", "contoso", "--json");
        Assert.True(verified.Exit == 0, verified.Out);
        Assert.True((bool)JsonNode.Parse(verified.Out)!["ok"]!);

        var deactivate = await cli.RunAsync("m365", "deactivate", "contoso");
        Assert.True(deactivate.Exit == 0, deactivate.Error);
        Assert.All(exchange.Rules, r => Assert.Equal("Disabled", (string?)r["State"]));

        var remove = await cli.RunAsync("m365", "remove", "contoso");
        Assert.True(remove.Exit == 0, remove.Error);
        Assert.Empty(exchange.Rules);
        Assert.DoesNotContain(TestTenants.RelayKey, connect.Out + plan.Out + apply.Out + apply.Error + verify.Out + verified.Out + remove.Out, StringComparison.Ordinal);
    }
}
