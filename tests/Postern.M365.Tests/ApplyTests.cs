using System.Text.Json.Nodes;
using Postern.Core.Tenants;
using Postern.M365.Blueprints;
using Postern.M365.Reconcile;

namespace Postern.M365.Tests;

public sealed class ApplyTests
{
    public static TheoryData<ProvisioningProfile> Profiles() => new(Enum.GetValues<ProvisioningProfile>());

    [Theory]
    [MemberData(nameof(Profiles))]
    public async Task Apply_on_an_empty_tenant_makes_every_item_and_a_second_apply_changes_nothing(ProvisioningProfile profile)
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var blueprint = TestTenants.Blueprint(profile);
        var progress = new StringWriter();

        var (plan, result) = await provisioner.ApplyAsync(blueprint, activated: false, progress, CancellationToken.None);

        Assert.True(result.Succeeded, result.Error);
        Assert.Equal(plan.Changes.Count(), result.Done.Count);
        Assert.All(blueprint.Connectors, c => Assert.NotNull(harness.Snapshot()[c.Direction == ConnectorDirection.Inbound ? "InboundConnectors" : "OutboundConnectors"]!
            .AsArray().SingleOrDefault(x => (string?)x!["Name"] == c.Name)));
        Assert.Equal(blueprint.Rules.Select(r => r.Name), harness.Rules.Select(r => (string)r["Name"]!));
        Assert.All(harness.Rules, r => Assert.Equal("Disabled", (string?)r["State"]));
        Assert.Contains("[1/", progress.ToString(), StringComparison.Ordinal);

        var requests = harness.Emulator.Requests.Count;
        var again = await provisioner.PlanAsync(blueprint, activated: false, CancellationToken.None);
        Assert.True(again.IsEmpty, string.Join("\n", again.Changes));
        var (_, second) = await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None);
        Assert.Empty(second.Done);
        Assert.Empty(harness.Changes(requests));
    }
}
