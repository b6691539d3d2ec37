using System.Text.Json.Nodes;
using Postern.Core.Tenants;
using Postern.M365.Blueprints;
using Postern.M365.Exo;
using Postern.M365.Reconcile;

namespace Postern.M365.Tests;

/// <summary>Plan, apply, verify and remove against the emulated tenant, as issue 3's tests 2–5 describe.</summary>
public sealed class ProvisioningTests
{
    private static readonly string[] ForeignRules = ["Disclaimer", "Block executables", "Tag external", "Copy the board", "Partner bypass"];

    public static TheoryData<ProvisioningProfile> Profiles() => new(Enum.GetValues<ProvisioningProfile>());

    [Theory]
    [MemberData(nameof(Profiles))]
    public async Task On_a_tenant_with_rules_and_connectors_postern_lands_below_them_disabled_and_a_second_apply_changes_nothing(ProvisioningProfile profile)
    {
        await using var harness = await EmulatedTenantHarness.StartAsync(EmulatedTenantHarness.SampleSeed());
        var before = harness.Snapshot();
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var blueprint = TestTenants.Blueprint(profile);

        var (plan, result) = await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None);
        Assert.True(result.Succeeded, result.Error);
        Assert.Contains(plan.Steps, s => s.Name == "Postern Loop Check" && s.Summary == "create, disabled, below the 5 existing rules");

        var rules = harness.Rules;
        Assert.Equal(ForeignRules.Concat(blueprint.Rules.Select(r => r.Name)), rules.Select(r => (string)r["Name"]!));
        Assert.All(rules.Skip(5), r => Assert.Equal("Disabled", (string?)r["State"]));
        Assert.Equal(Enumerable.Range(0, rules.Count), rules.Select(r => (int)r["Priority"]!));
        // The foreign rules and connectors are exactly as they were.
        Assert.Equal(Json(before["TransportRules"]), Json(new JsonArray([.. rules.Take(5).Select(r => r.DeepClone())])));
        Assert.Equal(Json(before["OutboundConnectors"]![0]), Json(harness.Snapshot()["OutboundConnectors"]![0]));
        Assert.Equal(Json(before["InboundConnectors"]![0]), Json(harness.Snapshot()["InboundConnectors"]![0]));
        // Lists were added to, not replaced.
        Assert.Equal(["dkim.partner.example", "arc.postern.example"], Strings(harness.Snapshot()["ArcTrustedSealers"]));

        var requests = harness.Emulator.Requests.Count;
        var (again, second) = await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None);
        Assert.True(again.IsEmpty, string.Join("\n", again.Changes));
        Assert.Empty(second.Done);
        Assert.Empty(harness.Changes(requests));
    }

    [Fact]
    public async Task A_certificate_domain_that_is_not_one_of_the_tenants_accepted_domains_is_a_conflict_until_it_is()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        var deployment = new Deployment.M365Deployment { ProductDomain = "relay.example.net" }.ApplyDefaults();
        var blueprint = BlueprintBuilder.Build(new BlueprintRequest
        {
            Tenant = TestTenants.Contoso(),
            Domains = TestTenants.Domains,
            RelayKey = TestTenants.RelayKey,
        }, deployment);
        var name = $"{TestTenants.ContosoId}.eu.relay.example.net";

        var before = await new Provisioner(client).VerifyAsync(blueprint, CancellationToken.None);
        var conflict = Assert.Single(before.Conflicts, c => c.Subject.StartsWith("certificate domain", StringComparison.Ordinal));
        Assert.Equal($"certificate domain '{name}'", conflict.Subject);
        Assert.Contains("MC1226222", conflict.Problem, StringComparison.Ordinal);

        harness.Tenant.AddAcceptedDomain(name);
        var after = await new Provisioner(client).VerifyAsync(blueprint, CancellationToken.None);
        Assert.DoesNotContain(after.Conflicts, c => c.Subject.StartsWith("certificate domain", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Verify_reports_a_disabled_rule_an_edited_smart_host_and_a_removed_arc_sealer_and_apply_repairs_them()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var blueprint = TestTenants.Blueprint(ProvisioningProfile.Integrated);
        await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None);
        Assert.True((await provisioner.ActivateAsync(blueprint, null, CancellationToken.None)).Succeeded);
        Assert.True((await provisioner.VerifyAsync(blueprint, CancellationToken.None)).Ok);

        // Changes made directly in the tenant, as an admin would in the Exchange admin centre.
        harness.Direct("Disable-TransportRule", ("Identity", "Postern Redirect"));
        harness.Direct("Set-OutboundConnector", ("Identity", "To Postern"), ("SmartHosts", new[] { "smtp.elsewhere.example" }));
        harness.Direct("Set-ArcConfig", ("Identity", "Default"), ("ArcTrustedSealers", new[] { " " }));

        var report = await provisioner.VerifyAsync(blueprint, CancellationToken.None);
        Assert.False(report.Ok);
        var redirect = report.Items.Single(i => i.Name == "Postern Redirect");
        Assert.Equal(ItemStatus.Disabled, redirect.Status);
        var connector = report.Items.Single(i => i.Name == "To Postern");
        Assert.Equal(ItemStatus.Drifted, connector.Status);
        var drift = Assert.Single(connector.Differences);
        Assert.Equal(new Difference("SmartHosts", "m365-array-1.eu.postern.example, m365-array-2.eu.postern.example", "smtp.elsewhere.example"), drift);
        Assert.Equal(ItemStatus.Missing, report.Items.Single(i => i.Kind == "ARC trusted sealer").Status);
        Assert.Contains(report.Conflicts, c => c.Subject == "ARC" && c.Problem.StartsWith("arc.postern.example is not a trusted ARC sealer", StringComparison.Ordinal));
        Assert.All(report.Items.Where(i => i.Name is not ("Postern Redirect" or "To Postern" or "arc.postern.example")), i => Assert.Equal(ItemStatus.Present, i.Status));
        var text = new StringWriter();
        Reports.WriteVerify(text, report);
        Assert.Contains("drifted   outbound connector 'To Postern'", text.ToString(), StringComparison.Ordinal);
        Assert.Contains("SmartHosts is smtp.elsewhere.example, should be m365-array-1.eu.postern.example", text.ToString(), StringComparison.Ordinal);
        Assert.Contains("disabled  transport rule 'Postern Redirect'", text.ToString(), StringComparison.Ordinal);
        Assert.Contains("missing   ARC trusted sealer 'arc.postern.example'", text.ToString(), StringComparison.Ordinal);

        var (plan, result) = await provisioner.ApplyAsync(blueprint, activated: true, null, CancellationToken.None);
        Assert.True(result.Succeeded, result.Error);
        Assert.Equal(["update outbound connector 'To Postern'", "enable transport rule 'Postern Redirect'", "create ARC trusted sealer 'arc.postern.example'"],
            plan.Changes.Select(s => $"{s.Action.ToString().ToLowerInvariant()} {s.Title}"));
        Assert.True((await provisioner.VerifyAsync(blueprint, CancellationToken.None)).Ok);
    }

    [Fact]
    public async Task A_foreign_rule_above_postern_that_stops_processing_is_a_conflict()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var blueprint = TestTenants.Blueprint(ProvisioningProfile.Relay);
        await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None);
        await provisioner.ActivateAsync(blueprint, null, CancellationToken.None);

        harness.Direct("New-TransportRule", ("Name", "Stop here"), ("SenderDomainIs", new[] { "vip.example" }), ("StopRuleProcessing", true), ("Priority", 0));
        var report = await provisioner.VerifyAsync(blueprint, CancellationToken.None);

        Assert.False(report.Ok);
        var conflict = Assert.Single(report.Conflicts);
        Assert.Equal("transport rule 'Stop here' (priority 0)", conflict.Subject);
        Assert.Contains("stops processing more rules for mail matching SenderDomainIs", conflict.Problem, StringComparison.Ordinal);
        Assert.All(report.Items, i => Assert.Equal(ItemStatus.Present, i.Status));

        // The same rule below Postern's is no conflict.
        harness.Direct("Set-TransportRule", ("Identity", "Stop here"), ("Priority", 3));
        Assert.True((await provisioner.VerifyAsync(blueprint, CancellationToken.None)).Ok);
    }

    [Fact]
    public async Task Verify_names_the_conflicts_of_a_tenant_that_already_has_another_gateway()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync(EmulatedTenantHarness.SampleSeed());
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var blueprint = TestTenants.Blueprint(ProvisioningProfile.Integrated);
        await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None);

        var report = await provisioner.VerifyAsync(blueprint, CancellationToken.None);
        var subjects = report.Conflicts.Select(c => c.Subject).ToArray();
        Assert.Equal(["transport rule 'Partner bypass' (priority 4)", "outbound connector 'Gateway Outbound'", "inbound connector 'Gateway Inbound'"], subjects);
        Assert.Contains("sets the SCL to -1", report.Conflicts[0].Problem, StringComparison.Ordinal);
        Assert.Contains("sends all outgoing mail to smtp.gateway.example", report.Conflicts[1].Problem, StringComparison.Ordinal);
        Assert.Contains("from 192.0.2.200", report.Conflicts[2].Problem, StringComparison.Ordinal);
        // A disabled rule that rejects mail is no conflict; the rules are disabled, so not "all good" either.
        Assert.DoesNotContain(report.Conflicts, c => c.Subject.Contains("Block executables", StringComparison.Ordinal));
        Assert.Contains(report.Items, i => i.Status == ItemStatus.Disabled);
    }

    [Fact]
    public async Task Remove_deletes_postern_items_and_leaves_the_foreign_ones_exactly_as_they_were()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync(EmulatedTenantHarness.SampleSeed());
        var before = harness.Snapshot();
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var blueprint = TestTenants.Blueprint(ProvisioningProfile.Relay);
        await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None);
        await provisioner.ActivateAsync(blueprint, null, CancellationToken.None);

        var result = await provisioner.RemoveAsync(blueprint, null, CancellationToken.None);

        Assert.True(result.Succeeded, result.Error);
        var after = harness.Snapshot();
        foreach (var part in new[] { "TransportRules", "InboundConnectors", "OutboundConnectors", "ArcTrustedSealers", "IPAllowList", "SpoofItems", "AcceptedDomains" })
            Assert.True(Json(before[part]) == Json(after[part]), $"{part} changed:\n{Json(before[part])}\n{Json(after[part])}");
        // Removing again finds nothing to remove.
        Assert.Empty((await provisioner.RemoveAsync(blueprint, null, CancellationToken.None)).Done);
    }

    [Fact]
    public async Task Apply_stops_at_the_first_error_says_what_was_and_was_not_done_and_a_rerun_finishes()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var blueprint = TestTenants.Blueprint(ProvisioningProfile.Relay);
        harness.Emulator.FailNext("New-TransportRule", "The tenant has reached its limit of 300 transport rules.");

        var (_, result) = await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None);

        Assert.False(result.Succeeded);
        Assert.Equal("transport rule 'Postern Loop Check'", result.Failed!.Title);
        Assert.Equal("New-TransportRule 'Postern Loop Check': The tenant has reached its limit of 300 transport rules. (ValidationException)", result.Error);
        Assert.Equal(["inbound connector 'From Postern'", "outbound connector 'To Postern'"], result.Done.Select(s => s.Title));
        Assert.Contains(result.NotDone, s => s.Title == "transport rule 'Postern Inbound'");
        var text = new StringWriter();
        Reports.WriteResult(text, result, "postern m365 apply contoso");
        Assert.Contains("Done: create inbound connector 'From Postern'; create outbound connector 'To Postern'.", text.ToString(), StringComparison.Ordinal);
        Assert.Contains("Not done: create transport rule 'Postern Loop Check'; create transport rule 'Postern Outbound';", text.ToString(), StringComparison.Ordinal);

        var (plan, rerun) = await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None);
        Assert.True(rerun.Succeeded, rerun.Error);
        Assert.DoesNotContain(plan.Changes, s => s.Kind.EndsWith("connector", StringComparison.Ordinal));
        Assert.True((await provisioner.PlanAsync(blueprint, false, CancellationToken.None)).IsEmpty);
    }

    [Fact]
    public async Task Throttling_is_survived_by_waiting_as_retry_after_says()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var blueprint = TestTenants.Blueprint(ProvisioningProfile.Relay);
        harness.Emulator.Throttle(3, 429, TimeSpan.FromSeconds(7));

        var (_, result) = await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None);

        Assert.True(result.Succeeded, result.Error);
        Assert.Equal(3, harness.Emulator.ThrottledResponses);
        Assert.Equal([TimeSpan.FromSeconds(7), TimeSpan.FromSeconds(7), TimeSpan.FromSeconds(7)], harness.Waits);
        Assert.True((await provisioner.PlanAsync(blueprint, false, CancellationToken.None)).IsEmpty);
    }

    [Fact]
    public async Task A_change_whose_answer_is_lost_after_Exchange_made_it_is_read_back_and_not_made_twice()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync(EmulatedTenantHarness.SampleSeed());
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var blueprint = TestTenants.Blueprint(ProvisioningProfile.Relay);
        // Exchange makes the first rule and the inbound connector, then the gateway answers 504 for each.
        harness.Emulator.LoseAnswerAfterApplying("New-TransportRule");
        harness.Emulator.LoseAnswerAfterApplying("New-InboundConnector");

        var (plan, result) = await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None);

        Assert.True(result.Succeeded, result.Error);
        Assert.Equal(plan.Changes.Count(), result.Done.Count);
        // Each item was asked for once: the lost answers were followed by reads, not by a second New-*.
        Assert.Equal(blueprint.Rules.Select(r => r.Name), harness.Emulator.Requests.Where(r => r.Cmdlet == "New-TransportRule").Select(r => r.Target));
        Assert.Equal([504, 200, 200], harness.Emulator.Requests.Where(r => r.Cmdlet == "New-TransportRule").Select(r => r.Status));
        Assert.Single(harness.Emulator.Requests, r => r.Cmdlet == "New-InboundConnector");
        Assert.DoesNotContain(harness.Emulator.Requests, r => r.Status is >= 400 and not 504);
        Assert.True((await provisioner.PlanAsync(blueprint, false, CancellationToken.None)).IsEmpty);
    }

    [Fact]
    public async Task A_503_on_a_write_set_over_the_emulators_http_endpoint_is_waited_out_read_back_and_apply_completes()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync(EmulatedTenantHarness.SampleSeed());
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var blueprint = TestTenants.Blueprint(ProvisioningProfile.Relay);
        using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, c, _, _) => c!.Thumbprint == harness.Server.TlsCertificate.Thumbprint };
        using var http = new HttpClient(handler) { BaseAddress = harness.Server.BaseAddress };

        // The second New-TransportRule (Postern Outbound) and its first retry are refused; reads and other writes pass.
        using var throttle = await http.PostAsync("_emulator/throttle", new StringContent(
            """{"count":2,"status":503,"retryAfterSeconds":3,"after":1,"cmdlet":"New-TransportRule"}""", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal(System.Net.HttpStatusCode.NoContent, throttle.StatusCode);
        var (plan, result) = await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None);

        Assert.True(result.Succeeded, result.Error);
        Assert.Equal(["New-TransportRule", "New-TransportRule"], harness.Emulator.ThrottledCmdlets);
        Assert.Equal([TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(3)], harness.Waits);
        // Each rule was created once, in its place, disabled: the refused write was not half done.
        Assert.Equal(blueprint.Rules.Select(r => r.Name), harness.Emulator.Requests.Where(r => r.Cmdlet == "New-TransportRule").Select(r => r.Target));
        Assert.Equal(ForeignRules.Concat(blueprint.Rules.Select(r => r.Name)), harness.Rules.Select(r => (string)r["Name"]!));
        Assert.All(harness.Rules.Skip(5), r => Assert.Equal("Disabled", (string?)r["State"]));
        Assert.Equal(plan.Changes.Count(), result.Done.Count);
        Assert.True((await provisioner.PlanAsync(blueprint, false, CancellationToken.None)).IsEmpty);
        Assert.Equal(ItemStatus.Disabled, (await provisioner.VerifyAsync(blueprint, CancellationToken.None)).Items.Single(i => i.Name == "Postern Outbound").Status);
    }

    [Fact]
    public async Task An_activated_tenant_gets_a_missing_rule_back_in_its_place_and_enabled()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync(EmulatedTenantHarness.SampleSeed());
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var blueprint = TestTenants.Blueprint(ProvisioningProfile.RelayLegacy);
        await provisioner.ApplyAsync(blueprint, activated: false, null, CancellationToken.None);
        await provisioner.ActivateAsync(blueprint, null, CancellationToken.None);
        harness.Direct("Remove-TransportRule", ("Identity", "Postern Loop Check"));
        harness.Direct("Set-TransportRule", ("Identity", "Postern Inbound"), ("Priority", 0));

        var before = await provisioner.VerifyAsync(blueprint, CancellationToken.None);
        Assert.Equal(ItemStatus.Missing, before.Items.Single(i => i.Name == "Postern Loop Check").Status);
        var order = before.Items.Single(i => i.Name == "Postern Inbound");
        Assert.Equal(ItemStatus.Present, order.Status);
        var outbound = before.Items.Single(i => i.Name == "Postern Outbound");
        Assert.Equal("Priority", Assert.Single(outbound.Differences).Parameter);

        var (plan, result) = await provisioner.ApplyAsync(blueprint, activated: true, null, CancellationToken.None);
        Assert.True(result.Succeeded, result.Error);
        Assert.Contains(plan.Changes, s => s.Action == StepAction.Move && s.Name == "Postern Outbound");
        Assert.Equal(["Postern Loop Check", "Postern Outbound", "Postern Inbound"],
            harness.Rules.Select(r => (string)r["Name"]!).Where(n => n.StartsWith("Postern", StringComparison.Ordinal)));
        Assert.All(harness.Rules.Where(r => ((string)r["Name"]!).StartsWith("Postern", StringComparison.Ordinal)), r => Assert.Equal("Enabled", (string?)r["State"]));
        Assert.True((await provisioner.PlanAsync(blueprint, true, CancellationToken.None)).IsEmpty);
    }

    [Fact]
    public async Task Changing_the_profile_removes_the_other_profiles_rule_and_recreates_the_inbound_connector()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        await provisioner.ApplyAsync(TestTenants.Blueprint(ProvisioningProfile.Integrated), activated: false, null, CancellationToken.None);

        var relay = TestTenants.Blueprint(ProvisioningProfile.Relay);
        var (plan, result) = await provisioner.ApplyAsync(relay, activated: false, null, CancellationToken.None);

        Assert.True(result.Succeeded, result.Error);
        Assert.Contains(plan.Changes, s => s.Action == StepAction.Recreate && s.Name == "From Postern");
        Assert.Contains(plan.Changes, s => s.Action == StepAction.Delete && s.Name == "Postern Redirect");
        Assert.Equal(["Postern Loop Check", "Postern Outbound", "Postern Inbound"], harness.Rules.Select(r => (string)r["Name"]!));
        Assert.True((await provisioner.PlanAsync(relay, false, CancellationToken.None)).IsEmpty);
    }

    [Fact]
    public async Task A_rotated_relay_key_or_loop_token_is_found_by_verify_and_put_in_place_by_apply()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var tenant = TestTenants.Contoso();
        await provisioner.ApplyAsync(TestTenants.Blueprint(ProvisioningProfile.Integrated), activated: false, null, CancellationToken.None);

        // postern relay rotate: a new key, the old one still valid for a while; the loop token rotates too.
        var newKey = RelayKey.Generate();
        var rotated = tenant with
        {
            RelayKeyHash = RelayKey.Hash(newKey),
            PreviousRelayKeyHash = tenant.RelayKeyHash,
            PreviousRelayKeyExpires = DateTimeOffset.UtcNow.AddHours(1),
            LoopToken = LoopToken.Generate(),
            PreviousLoopToken = tenant.LoopToken,
        };
        var withoutKey = TestTenants.Blueprint(ProvisioningProfile.Integrated, relayKey: null, tenant: rotated);
        var report = await provisioner.VerifyAsync(withoutKey, CancellationToken.None);
        var redirect = report.Items.Single(i => i.Name == "Postern Redirect");
        Assert.Equal(new Difference("SetHeaderValue", "the relay key", "the previous relay key"), Assert.Single(redirect.Differences));
        Assert.Equal("HeaderContainsWords", Assert.Single(report.Items.Single(i => i.Name == "Postern Loop Check").Differences).Parameter);

        var plan = await provisioner.PlanAsync(withoutKey, false, CancellationToken.None);
        Assert.True(plan.NeedsRelayKey);
        await Assert.ThrowsAsync<Core.PosternException>(() => provisioner.ApplyAsync(withoutKey, false, null, CancellationToken.None));

        var withKey = TestTenants.Blueprint(ProvisioningProfile.Integrated, relayKey: newKey, tenant: rotated);
        var (_, result) = await provisioner.ApplyAsync(withKey, activated: false, null, CancellationToken.None);
        Assert.True(result.Succeeded, result.Error);
        Assert.Equal(newKey, (string?)harness.Rule("Postern Redirect")["SetHeaderValue"]);
        Assert.Equal([rotated.LoopToken, tenant.LoopToken], Strings(harness.Rule("Postern Loop Check")["HeaderContainsWords"]));
        // Only the key and the words changed, and each update still names its header: Exchange takes them only in pairs.
        var updates = harness.Emulator.Requests.Where(r => r.Cmdlet == "Set-TransportRule" && r.Status == 200).ToList();
        Assert.Contains(updates, r => r.Target == "Postern Redirect" && r.Parameters.ContainsKey("SetHeaderValue") && r.Parameters.ContainsKey("SetHeaderName"));
        Assert.Contains(updates, r => r.Target == "Postern Loop Check" && r.Parameters.ContainsKey("HeaderContainsWords") && r.Parameters.ContainsKey("HeaderContainsMessageHeader"));
        Assert.True((await provisioner.PlanAsync(withoutKey, false, CancellationToken.None)).IsEmpty);
    }

    [Fact]
    public async Task Plan_and_verify_name_the_loop_tokens_in_differences_and_never_show_them()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        const string previous = "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5";
        var rotating = TestTenants.Contoso(previousLoopToken: previous);
        await provisioner.ApplyAsync(TestTenants.Blueprint(ProvisioningProfile.Relay, tenant: rotating), activated: false, null, CancellationToken.None);
        // A loop token where Postern puts none, as a careless edit in the admin centre would leave it.
        harness.Direct("Set-TransportRule", ("Identity", "Postern Outbound"),
            ("ExceptIfHeaderContainsMessageHeader", "X-Postern-Loop"), ("ExceptIfHeaderContainsWords", new[] { rotating.LoopToken, previous }));

        // The rotation ends: the rules should match the current token only.
        var ended = TestTenants.Blueprint(ProvisioningProfile.Relay, tenant: rotating with { PreviousLoopToken = null });
        var plan = await provisioner.PlanAsync(ended, false, CancellationToken.None);
        var report = await provisioner.VerifyAsync(ended, CancellationToken.None);

        var loop = report.Items.Single(i => i.Name == "Postern Loop Check");
        Assert.Equal(new Difference("HeaderContainsWords", "the loop token", "the loop token, (hidden)"), Assert.Single(loop.Differences));
        Assert.Equal(new Difference("ExceptIfHeaderContainsWords", "the loop token", "the loop token, (hidden)"),
            report.Items.Single(i => i.Name == "Postern Inbound").Differences.Single(d => d.Parameter == "ExceptIfHeaderContainsWords"));
        Assert.Equal(new Difference("ExceptIfHeaderContainsWords", "(none)", "the loop token, (hidden)"),
            report.Items.Single(i => i.Name == "Postern Outbound").Differences.Single(d => d.Parameter == "ExceptIfHeaderContainsWords"));
        Assert.Equal(loop.Differences, plan.Steps.Single(s => s.Name == "Postern Loop Check").Changes);
        // During the rotation the previous token is named too.
        var during = await provisioner.VerifyAsync(TestTenants.Blueprint(ProvisioningProfile.Relay, tenant: rotating), CancellationToken.None);
        Assert.Equal(new Difference("ExceptIfHeaderContainsWords", "(none)", "the loop token, the previous loop token"),
            during.Items.Single(i => i.Name == "Postern Outbound").Differences.Single(d => d.Parameter == "ExceptIfHeaderContainsWords"));

        var text = new StringWriter();
        Reports.WritePlan(text, plan);
        Reports.WriteVerify(text, report);
        Reports.WriteVerify(text, during);
        var output = text + Reports.PlanJson(plan) + Reports.VerifyJson(report) + Reports.VerifyJson(during);
        Assert.Contains("HeaderContainsWords: is the loop token, (hidden), should be the loop token", output, StringComparison.Ordinal);
        Assert.Contains("ExceptIfHeaderContainsWords is the loop token, the previous loop token, should be (none)", output, StringComparison.Ordinal);
        Assert.DoesNotContain(rotating.LoopToken, output, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(previous, output, StringComparison.OrdinalIgnoreCase);

        // The rules themselves must of course hold the token: apply puts it there.
        await provisioner.ApplyAsync(ended, activated: false, null, CancellationToken.None);
        Assert.Equal([rotating.LoopToken], Strings(harness.Rule("Postern Loop Check")["HeaderContainsWords"]));
        Assert.True((await provisioner.PlanAsync(ended, false, CancellationToken.None)).IsEmpty);
    }

    [Fact]
    public async Task A_limited_scope_and_then_all_users_adds_and_clears_the_rule_conditions()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var scope = new ProvisioningScope(["alice@contoso.com"], ["alice@contoso.com"]);
        await provisioner.ApplyAsync(TestTenants.Blueprint(ProvisioningProfile.Relay, scope: scope), activated: false, null, CancellationToken.None);
        Assert.Equal(["alice@contoso.com"], Strings(harness.Rule("Postern Inbound")["SentTo"]));

        var all = TestTenants.Blueprint(ProvisioningProfile.Relay);
        var plan = await provisioner.PlanAsync(all, false, CancellationToken.None);
        var inbound = plan.Changes.Single(s => s.Name == "Postern Inbound");
        Assert.Equal("update SentTo", inbound.Summary);
        Assert.Null(inbound.Invocations.Single().Get("SentTo"));
        await provisioner.ApplyAsync(all, activated: false, null, CancellationToken.None);
        Assert.Null(harness.Rule("Postern Inbound")["SentTo"]);
        Assert.True((await provisioner.PlanAsync(all, false, CancellationToken.None)).IsEmpty);
    }

    [Fact]
    public async Task Every_command_sent_in_every_operation_is_in_the_cmdlet_reference()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync(EmulatedTenantHarness.SampleSeed());
        using var client = harness.Client();
        var recording = new RecordingExchange(client);
        var provisioner = new Provisioner(recording);
        foreach (var profile in new[] { ProvisioningProfile.Integrated, ProvisioningProfile.Relay, ProvisioningProfile.RelayLegacy })
        {
            var scope = profile == ProvisioningProfile.Relay ? new ProvisioningScope(["alice@contoso.com"], ["bob@contoso.com"]) : ProvisioningScope.AllUsers;
            var blueprint = TestTenants.Blueprint(profile, scope: scope);
            await provisioner.ApplyAsync(blueprint, false, null, CancellationToken.None);
            await provisioner.ActivateAsync(blueprint, null, CancellationToken.None);
            harness.Direct("Set-OutboundConnector", ("Identity", "To Postern"), ("RecipientDomains", new[] { "contoso.com" }));
            harness.Direct("Set-TransportRule", ("Identity", "Postern Loop Check"), ("SubjectContainsWords", new[] { "x" }));
            await provisioner.ApplyAsync(blueprint, true, null, CancellationToken.None);
            await provisioner.VerifyAsync(blueprint, CancellationToken.None);
            await provisioner.DeactivateAsync(blueprint, null, CancellationToken.None);
        }
        await provisioner.RemoveAsync(TestTenants.Blueprint(ProvisioningProfile.Integrated), null, CancellationToken.None);

        Assert.Contains(recording.Calls, c => c.Cmdlet == "Remove-TenantAllowBlockListSpoofItems");
        Assert.Contains(recording.Calls, c => c.Cmdlet == "Set-TransportRule" && c.Has("SubjectContainsWords"));
        Assert.Contains(recording.Calls, c => c.Cmdlet == "Remove-InboundConnector");
        var problems = recording.Calls.SelectMany(c => CmdletReference.Default.Validate(c).Select(p => $"{c}: {p}")).ToArray();
        Assert.Empty(problems);
    }

    [Fact]
    public async Task An_accepted_domain_that_is_not_authoritative_is_warned_about_and_reported()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        harness.Tenant.AddAcceptedDomain("contoso.net", "InternalRelay");
        using var client = harness.Client();
        var provisioner = new Provisioner(client);
        var blueprint = TestTenants.Blueprint(ProvisioningProfile.Integrated);

        var plan = await provisioner.PlanAsync(blueprint, false, CancellationToken.None);
        Assert.Contains(plan.Warnings, w => w.StartsWith("accepted domain 'contoso.net' is InternalRelay, not Authoritative", StringComparison.Ordinal));
        await provisioner.ApplyAsync(blueprint, false, null, CancellationToken.None);
        await provisioner.ActivateAsync(blueprint, null, CancellationToken.None);

        var report = await provisioner.VerifyAsync(blueprint, CancellationToken.None);
        Assert.Equal(ItemStatus.Present, report.Items.Single(i => i.Name == "contoso.com").Status);
        var net = report.Items.Single(i => i.Name == "contoso.net");
        Assert.Equal(new Difference("DomainType", "Authoritative", "InternalRelay"), Assert.Single(net.Differences));
        Assert.Equal("accepted domain 'contoso.net'", Assert.Single(report.Conflicts).Subject);
    }

    [Fact]
    public async Task Activate_needs_the_rules_to_exist()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        var error = await Assert.ThrowsAsync<Core.PosternException>(() =>
            new Provisioner(client).ActivateAsync(TestTenants.Blueprint(ProvisioningProfile.Relay), null, CancellationToken.None));
        Assert.Equal("tenant 'contoso' lacks the rules 'Postern Loop Check', 'Postern Outbound', 'Postern Inbound': run 'postern m365 apply contoso' first", error.Message);
        Assert.Empty(harness.Changes());
    }

    private static string Json(JsonNode? node) => node?.ToJsonString() ?? "null";

    private static string[] Strings(JsonNode? node) => node is JsonArray a ? a.Select(x => (string)x!).ToArray() : [];
}
