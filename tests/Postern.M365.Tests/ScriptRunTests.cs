using System.Text.Json.Nodes;
using Postern.M365.Blueprints;
using Postern.M365.Reconcile;
using Postern.M365.Rendering;

namespace Postern.M365.Tests;

/// <summary>
/// The generated script run for real, in PowerShell hosted in-process, against the emulated tenant:
/// it must leave the tenant as apply does and, run again, change nothing.
/// </summary>
public sealed class ScriptRunTests
{
    public static TheoryData<ProvisioningProfile, bool> Tenants()
    {
        var data = new TheoryData<ProvisioningProfile, bool>();
        foreach (var profile in Enum.GetValues<ProvisioningProfile>())
        {
            data.Add(profile, false);
            data.Add(profile, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Tenants))]
    public async Task The_script_leaves_the_tenant_as_apply_does_and_a_second_run_changes_nothing(ProvisioningProfile profile, bool seeded)
    {
        var seed = seeded ? EmulatedTenantHarness.SampleSeed() : null;
        await using var scripted = await EmulatedTenantHarness.StartAsync(seed);
        await using var applied = await EmulatedTenantHarness.StartAsync(seed);
        using var shell = new ExchangeShell(scripted.Emulator, scripted.Tenant);
        using var scriptedClient = scripted.Client();
        using var appliedClient = applied.Client();
        var blueprint = TestTenants.Blueprint(profile);
        // The script as the golden files have it: it takes the relay key as a parameter.
        var script = PowerShellScript.Render(TestTenants.Blueprint(profile, relayKey: null));
        var provisioner = new Provisioner(appliedClient);

        var first = shell.Run(script, TestTenants.RelayKey, activate: false);
        var (_, result) = await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None);
        Assert.True(result.Succeeded, result.Error);
        AssertSameState(applied.Snapshot(), scripted.Snapshot());
        Assert.Contains(first.Steps, s => s.StartsWith("postern: creating transport rule 'Postern Loop Check' (disabled)", StringComparison.Ordinal));
        AssertSecondRunChangesNothing(scripted, shell, script, activate: false);

        shell.Run(script, TestTenants.RelayKey, activate: true);
        Assert.True((await provisioner.ActivateAsync(blueprint, null, CancellationToken.None)).Succeeded);
        AssertSameState(applied.Snapshot(), scripted.Snapshot());
        var report = await new Provisioner(scriptedClient).VerifyAsync(blueprint, CancellationToken.None);
        Assert.All(report.Items, i => Assert.True(i.Status == ItemStatus.Present, $"{i.Title}: {Reports.Status(i.Status)} {string.Join("; ", i.Differences)}"));
        Assert.Equal((await provisioner.VerifyAsync(blueprint, CancellationToken.None)).Conflicts, report.Conflicts);
        // The sample tenant's own gateway conflicts with Postern; an empty tenant has nothing in the way.
        Assert.Equal(!seeded, report.Ok);
        Assert.True((await new Provisioner(scriptedClient).PlanAsync(blueprint, true, CancellationToken.None)).IsEmpty);

        AssertSecondRunChangesNothing(scripted, shell, script, activate: true);
        AssertSecondRunChangesNothing(scripted, shell, script, activate: false);
    }

    /// <summary>The update paths: what an admin changed by hand, and a loop-token rotation, are put right as apply puts them right.</summary>
    [Fact]
    public async Task The_script_repairs_drift_and_a_token_rotation_as_apply_does_and_a_second_run_changes_nothing()
    {
        var seed = EmulatedTenantHarness.SampleSeed();
        await using var scripted = await EmulatedTenantHarness.StartAsync(seed);
        await using var applied = await EmulatedTenantHarness.StartAsync(seed);
        using var shell = new ExchangeShell(scripted.Emulator, scripted.Tenant);
        using var scriptedClient = scripted.Client();
        using var appliedClient = applied.Client();
        var before = TestTenants.Blueprint(ProvisioningProfile.Relay);
        foreach (var client in new[] { scriptedClient, appliedClient })
        {
            var (_, done) = await new Provisioner(client).ApplyAsync(before, activated: true, null, CancellationToken.None);
            Assert.True(done.Succeeded, done.Error);
        }
        foreach (var harness in new[] { scripted, applied })
        {
            // Changes made directly in the tenant, as an admin would in the Exchange admin centre.
            harness.Direct("Disable-TransportRule", ("Identity", "Postern Inbound"));
            harness.Direct("Set-TransportRule", ("Identity", "Postern Loop Check"), ("SubjectContainsWords", new[] { "urgent" }));
            harness.Direct("Set-OutboundConnector", ("Identity", "To Postern"), ("SmartHosts", new[] { "smtp.elsewhere.example" }), ("RecipientDomains", new[] { "contoso.com" }));
            harness.Direct("Set-ArcConfig", ("Identity", "Default"), ("ArcTrustedSealers", new[] { "dkim.partner.example" }));
            harness.Direct("Set-HostedConnectionFilterPolicy", ("Identity", "Default"), ("IPAllowList", new[] { "192.0.2.200" }));
            harness.Direct("Set-RemoteDomain", ("Identity", "Default"), ("CharacterSet", "iso-8859-1"), ("TNEFEnabled", true));
            var spoof = ((JsonArray)harness.Snapshot()["SpoofItems"]!).Last()!;
            harness.Direct("Set-TenantAllowBlockListSpoofItems", ("Identity", "Default"), ("Ids", new[] { (string)spoof["Name"]! }), ("Action", "Block"));
        }
        // postern relay rotate: the rules must match the new and the previous loop token.
        var rotated = TestTenants.Contoso() with { LoopToken = "0123456789abcdef0123456789abcdef", PreviousLoopToken = TestTenants.Contoso().LoopToken };
        var blueprint = TestTenants.Blueprint(ProvisioningProfile.Relay, tenant: rotated);
        var script = PowerShellScript.Render(TestTenants.Blueprint(ProvisioningProfile.Relay, relayKey: null, tenant: rotated));

        var run = shell.Run(script, TestTenants.RelayKey, activate: true);
        var (plan, result) = await new Provisioner(appliedClient).ApplyAsync(blueprint, activated: true, null, CancellationToken.None);

        Assert.True(result.Succeeded, result.Error);
        Assert.True(plan.Changes.Count() >= 8, string.Join("\n", plan.Changes.Select(c => c.Title)));
        AssertSameState(applied.Snapshot(), scripted.Snapshot());
        Assert.Contains(run.Steps, s => s.StartsWith("postern: updating transport rule 'Postern Loop Check': HeaderContainsWords", StringComparison.Ordinal));
        Assert.Contains(run.Steps, s => s == "postern: enabling transport rule 'Postern Inbound'");
        Assert.Equal([rotated.LoopToken, rotated.PreviousLoopToken!], Strings(scripted.Rule("Postern Loop Check")["HeaderContainsWords"]));
        var report = await new Provisioner(scriptedClient).VerifyAsync(blueprint, CancellationToken.None);
        Assert.All(report.Items, i => Assert.True(i.Status == ItemStatus.Present, $"{i.Title}: {Reports.Status(i.Status)} {string.Join("; ", i.Differences)}"));
        AssertSecondRunChangesNothing(scripted, shell, script, activate: true);
    }

    [Fact]
    public void An_unknown_parameter_stops_the_script_as_exchange_would()
    {
        var emulator = new ExoEmulator.ExoEmulator();
        var tenant = emulator.AddTenant(TestTenants.ContosoId, "contoso.onmicrosoft.com");
        using var shell = new ExchangeShell(emulator, tenant);

        var error = Assert.Throws<InvalidOperationException>(() =>
            shell.Run("param($RelayKey)\n$ErrorActionPreference = 'Stop'\nNew-TransportRule -Name 'x' -NoSuchParameter 1", "", activate: false));
        Assert.Contains("NoSuchParameter", error.Message, StringComparison.Ordinal);
        Assert.Empty(emulator.Requests);

        var refused = Assert.Throws<InvalidOperationException>(() =>
            shell.Run("param($RelayKey)\n$ErrorActionPreference = 'Stop'\nNew-TransportRule -Name 'x' -Mode 'Sometimes'", "", activate: false));
        Assert.Contains("Sometimes", refused.Message, StringComparison.Ordinal);
        Assert.Empty(((JsonArray)tenant.Snapshot()["TransportRules"]!));
    }

    private static void AssertSecondRunChangesNothing(EmulatedTenantHarness harness, ExchangeShell shell, string script, bool activate)
    {
        var since = harness.Emulator.Requests.Count;
        var run = shell.Run(script, TestTenants.RelayKey, activate);
        var calls = harness.Emulator.Requests.Skip(since).ToArray();
        Assert.Contains(calls, c => c.Cmdlet == "Get-TransportRule");
        Assert.Empty(harness.Changes(since).Select(c => $"{c.Cmdlet} {c.Target}: {c.Parameters.ToJsonString()}"));
        Assert.DoesNotContain(run.Steps, s => s.Contains("creating", StringComparison.Ordinal) || s.Contains("updating", StringComparison.Ordinal));
    }

    /// <summary>The two tenants hold the same items with the same values; object ids, which Exchange makes up, aside.</summary>
    private static void AssertSameState(JsonObject expected, JsonObject actual)
    {
        foreach (var part in new[] { "InboundConnectors", "OutboundConnectors", "TransportRules", "ArcTrustedSealers", "IPAllowList", "SpoofItems", "RemoteDomains", "AcceptedDomains" })
            Assert.Equal(Canonical(expected[part]), Canonical(actual[part]));
    }

    private static string[] Strings(JsonNode? node) => node is JsonArray a ? a.Select(x => (string)x!).ToArray() : [];

    private static string Canonical(JsonNode? node) => Strip(node)?.ToJsonString() ?? "null";

    private static JsonNode? Strip(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o
            .Where(p => p.Key is not ("Guid" or "ObjectId") && !(p.Key is "Name" or "Identity" && o.ContainsKey("SpoofedUser")))
            .OrderBy(p => p.Key, StringComparer.Ordinal)
            .Select(p => KeyValuePair.Create(p.Key, Strip(p.Value)))),
        JsonArray a => new JsonArray([.. a.Select(Strip)]),
        _ => node?.DeepClone(),
    };
}
