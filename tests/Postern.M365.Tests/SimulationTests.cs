using Postern.M365.Blueprints;
using Postern.M365.Reconcile;
using Postern.M365.Simulation;

namespace Postern.M365.Tests;

/// <summary>The path a message takes through a tenant's actual rules (as the emulator keeps them) and Postern.</summary>
public sealed class SimulationTests
{
    private static async Task<(EmulatedTenantHarness Harness, Blueprint Blueprint, TenantState State)> ProvisionedAsync(ProvisioningProfile profile, bool activate = true)
    {
        var harness = await EmulatedTenantHarness.StartAsync(EmulatedTenantHarness.SampleSeed());
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var blueprint = TestTenants.Blueprint(profile);
        var (_, applied) = await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None);
        Assert.True(applied.Succeeded, applied.Error);
        if (activate)
            Assert.True((await provisioner.ActivateAsync(blueprint, null, CancellationToken.None)).Succeeded);
        return (harness, blueprint, await TenantState.ReadAsync(client, CancellationToken.None));
    }

    private static SimulatedMessage FromTheInternet(string to = "alice@contoso.com") => new()
    {
        From = "sender@external.test",
        To = [to],
        Headers = [new("Subject", "hello")],
        SenderIp = System.Net.IPAddress.Parse("203.0.113.50"),
    };

    [Theory]
    [InlineData(ProvisioningProfile.Integrated)]
    [InlineData(ProvisioningProfile.Relay)]
    [InlineData(ProvisioningProfile.RelayLegacy)]
    public async Task Internet_mail_passes_Postern_once_and_reaches_the_mailbox(ProvisioningProfile profile)
    {
        var (harness, blueprint, state) = await ProvisionedAsync(profile);
        await using var _ = harness;

        var result = PathSimulator.Simulate(state, blueprint, FromTheInternet());

        Assert.False(result.Loops);
        Assert.Equal(1, result.PosternPasses);
        Assert.StartsWith("to Postern through 'To Postern' (m365-array-1.eu.postern.example, m365-array-2.eu.postern.example", result.Passes[0].Where, StringComparison.Ordinal);
        var second = result.Passes[1];
        // The seed's own "Tag external" applies too; of Postern's rules only Loop Check does, and it ends the pass.
        var loopCheck = Assert.Single(second.Rules.Rules, r => r.Applied && r.Rule.StartsWith("Postern", StringComparison.Ordinal));
        Assert.Equal("Postern Loop Check", loopCheck.Rule);
        Assert.Contains("stop processing more rules", loopCheck.Actions);
        Assert.Equal("delivered to the mailbox of alice@contoso.com", second.Where);
        Assert.Contains(second.Rules.Rules.Single(r => r.Rule == "Tag external").Actions, a => a.StartsWith("not simulated:", StringComparison.Ordinal));
        // The loop header was removed before the mailbox, and the relay key never came back from Postern.
        Assert.DoesNotContain(second.Rules.Message.Headers, h => h.Key.StartsWith("X-Postern-", StringComparison.OrdinalIgnoreCase));
        var text = new StringWriter();
        PathSimulator.Write(text, result);
        Assert.DoesNotContain(TestTenants.Contoso().LoopToken, text.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(TestTenants.RelayKey, text.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_the_Loop_Check_rule_disabled_the_returned_message_would_loop()
    {
        var (harness, blueprint, _) = await ProvisionedAsync(ProvisioningProfile.Integrated);
        await using var __ = harness;
        harness.Direct("Disable-TransportRule", ("Identity", "Postern Loop Check"));
        using var client = harness.Client();
        var state = await TenantState.ReadAsync(client, CancellationToken.None);

        var result = PathSimulator.Simulate(state, blueprint, FromTheInternet());

        Assert.True(result.Loops);
        Assert.Equal(2, result.PosternPasses);
        Assert.Contains("554 5.4.6", result.Outcome, StringComparison.Ordinal);
        Assert.Contains(result.Passes[1].Rules.Rules, r => r.Rule == "Postern Loop Check" && !r.Applied && r.Reasons.SequenceEqual(["disabled"]));
    }

    [Fact]
    public async Task Rules_not_activated_leave_the_mail_unscanned_and_say_so()
    {
        var (harness, blueprint, state) = await ProvisionedAsync(ProvisioningProfile.Integrated, activate: false);
        await using var _ = harness;

        var result = PathSimulator.Simulate(state, blueprint, FromTheInternet());

        Assert.Equal(0, result.PosternPasses);
        Assert.StartsWith("does not pass through Postern", result.Outcome, StringComparison.Ordinal);
        Assert.Equal("delivered to the mailbox of alice@contoso.com", Assert.Single(result.Passes).Where);
    }

    [Theory]
    [InlineData("token", "x token y", true)]
    [InlineData("token", "Token.", true)]
    [InlineData("token", "tokens", false)]
    [InlineData("token", "atoken", false)]
    [InlineData("two words", "say two words now", true)]
    [InlineData("a*b", "a*b", true)]
    [InlineData("a*b", "axb", false)]
    public void Words_match_as_Exchange_matches_words(string word, string value, bool matches) =>
        Assert.Equal(matches, RuleEvaluator.ContainsWord(value, word));
}

/// <summary>Postern's rule evaluation and the emulator's, written apart from the same documentation, agree on the same cases.</summary>
public sealed class RuleEvaluationAgreementTests
{
    public static TheoryData<ProvisioningProfile, string> Cases()
    {
        var data = new TheoryData<ProvisioningProfile, string>();
        foreach (var profile in Enum.GetValues<ProvisioningProfile>())
            foreach (var name in new[] { "internet to user", "user to internet", "user to user", "returned by postern", "forged loop header", "from postern's address", "partner sender" })
                data.Add(profile, name);
        return data;
    }

    private static SimulatedMessage Message(string name, string loopToken) => name switch
    {
        "internet to user" => new() { From = "someone@external.test", To = ["alice@contoso.com"], SenderIp = System.Net.IPAddress.Parse("203.0.113.50") },
        "user to internet" => new() { From = "alice@contoso.com", To = ["bob@external.test"], Authenticated = true },
        "user to user" => new() { From = "alice@contoso.com", To = ["carol@contoso.net"], Authenticated = true },
        "returned by postern" => new() { From = "someone@external.test", To = ["alice@contoso.com"], Headers = [new("X-Postern-Loop", loopToken)], SenderIp = System.Net.IPAddress.Parse("198.51.100.25") },
        "forged loop header" => new() { From = "someone@external.test", To = ["alice@contoso.com"], Headers = [new("X-Postern-Loop", "0123456789abcdef0123456789abcdef")], SenderIp = System.Net.IPAddress.Parse("203.0.113.9") },
        "from postern's address" => new() { From = "someone@external.test", To = ["alice@contoso.com"], SenderIp = System.Net.IPAddress.Parse("198.51.100.26") },
        "partner sender" => new() { From = "x@partner.example", To = ["alice@contoso.com"], SenderIp = System.Net.IPAddress.Parse("203.0.113.7") },
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Both_apply_the_same_rules_and_route_to_the_same_connector(ProvisioningProfile profile, string name)
    {
        await using var harness = await EmulatedTenantHarness.StartAsync(EmulatedTenantHarness.SampleSeed());
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var blueprint = TestTenants.Blueprint(profile);
        Assert.True((await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None)).Result.Succeeded);
        Assert.True((await provisioner.ActivateAsync(blueprint, null, CancellationToken.None)).Succeeded);
        var state = await TenantState.ReadAsync(client, CancellationToken.None);
        var message = Message(name, blueprint.Tenant.LoopToken);

        var postern = RuleEvaluator.Evaluate(state, message);
        var emulator = harness.Tenant.RunTransportRules(new Postern.ExoEmulator.MailFlow.MailItem
        {
            MailFrom = message.From,
            Recipients = message.To,
            Headers = message.Headers.Select(h => (h.Key, h.Value)).ToList(),
            ClientAddress = message.SenderIp,
            Scl = message.Scl,
            Authenticated = message.Authenticated,
        });

        // Rules with a condition Postern does not read are left out of the comparison (Postern says "not simulated").
        var unread = postern.Rules.Where(r => r.Reasons.Any(x => x.StartsWith("not simulated", StringComparison.Ordinal))).Select(r => r.Rule).ToHashSet();
        Assert.Equal(emulator.Applied.Where(r => !unread.Contains(r)), postern.Rules.Where(r => r.Applied).Select(r => r.Rule));
        Assert.Equal(emulator.Connector, postern.RoutedTo);
        Assert.Equal(emulator.RequireTls, postern.RequireTls);
    }
}
