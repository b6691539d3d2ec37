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

    [Fact]
    public async Task Verify_json_after_a_drift_exits_2_and_names_each_status_the_differing_parameter_and_the_conflict()
    {
        await using var exchange = await EmulatedTenantHarness.StartAsync();
        using var cli = new CliHarness();
        Assert.Equal(0, (await cli.ConnectAsync(exchange)).Exit);
        Assert.Equal(0, (await cli.RunAsync("m365", "apply", "contoso", "--profile", "relay", "--relay-key-file", cli.RelayKeyFile)).Exit);
        Assert.Equal(0, (await cli.RunAsync("m365", "activate", "contoso")).Exit);
        Assert.Equal(0, (await cli.RunAsync("m365", "verify", "contoso", "--json")).Exit);

        // Changes made directly in the tenant, as an admin would in the Exchange admin centre.
        exchange.Direct("Disable-TransportRule", ("Identity", "Postern Inbound"));
        exchange.Direct("Set-OutboundConnector", ("Identity", "To Postern"), ("SmartHosts", new[] { "smtp.elsewhere.example" }));
        exchange.Direct("New-TransportRule", ("Name", "Stop here"), ("SenderDomainIs", new[] { "vip.example" }), ("StopRuleProcessing", true), ("Priority", 0));

        var (exit, output, error) = await cli.RunAsync("m365", "verify", "contoso", "--json");

        Assert.True(exit == 2, error + output);
        var report = JsonNode.Parse(output)!;
        Assert.False((bool)report["ok"]!);
        var items = ((JsonArray)report["items"]!).Select(i => i!).ToDictionary(i => $"{i["kind"]} '{i["name"]}'");
        var inbound = items["transport rule 'Postern Inbound'"];
        Assert.Equal("disabled", (string?)inbound["status"]);
        Assert.Empty((JsonArray)inbound["differences"]!);
        var connector = items["outbound connector 'To Postern'"];
        Assert.Equal("drifted", (string?)connector["status"]);
        var difference = Assert.Single((JsonArray)connector["differences"]!)!;
        Assert.Equal("SmartHosts", (string?)difference["parameter"]);
        Assert.Equal("m365-array-1.eu.postern.example, m365-array-2.eu.postern.example", (string?)difference["expected"]);
        Assert.Equal("smtp.elsewhere.example", (string?)difference["actual"]);
        Assert.All(items.Values.Where(i => i != inbound && i != connector), i => Assert.Equal("present", (string?)i["status"]));
        var conflict = Assert.Single((JsonArray)report["conflicts"]!)!;
        Assert.Equal("transport rule 'Stop here' (priority 0)", (string?)conflict["subject"]);
        Assert.Contains("stops processing more rules for mail matching SenderDomainIs", (string?)conflict["problem"], StringComparison.Ordinal);
        Assert.DoesNotContain(TestTenants.RelayKey, output, StringComparison.Ordinal);
    }
}

public sealed class CliErrorTests
{
    [Theory]
    [InlineData("error: 'bogus' is not a profile (integrated, relay, relay-legacy)", "m365", "script", "contoso", "--profile", "bogus")]
    [InlineData("error: 'sideways' is not an outbound mode (off, direct, via-m365)", "m365", "script", "contoso", "--outbound", "sideways")]
    [InlineData("error: no tenant 'fabrikam'", "m365", "script", "fabrikam")]
    [InlineData("error: tenant 'contoso' is not connected to Exchange Online: run 'postern m365 connect contoso --app-id ID --certificate FILE.pfx'", "m365", "verify", "contoso")]
    [InlineData("error: --app-id 'not-a-guid' is not a GUID", "m365", "connect", "contoso", "--app-id", "not-a-guid", "--certificate", "x.pfx")]
    [InlineData("error: --scope and --all-users exclude each other", "m365", "script", "contoso", "--scope", "x.txt", "--all-users")]
    public async Task Bad_input_is_one_error_line_naming_the_value(string expected, params string[] args)
    {
        using var cli = new CliHarness();
        var (exit, output, error) = await cli.RunAsync(args);
        Assert.Equal(1, exit);
        Assert.Equal(expected, error.Trim());
        Assert.Equal("", output);
    }

    [Fact]
    public async Task A_relay_key_that_is_not_the_tenants_is_refused_without_showing_it()
    {
        using var cli = new CliHarness();
        var file = Path.Combine(cli.DataDir, "old.key");
        await File.WriteAllTextAsync(file, "pk_an_old_key_that_was_rotated_away");
        var (exit, _, error) = await cli.RunAsync("m365", "script", "contoso", "--relay-key-file", file);
        Assert.Equal(1, exit);
        Assert.Equal($"error: the relay key in '{file}' is not tenant 'contoso''s current relay key (after 'postern relay rotate', give the new one)", error.Trim());
        Assert.DoesNotContain("pk_an_old_key", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bad_scope_file_or_configuration_is_named()
    {
        using var cli = new CliHarness();
        var scope = Path.Combine(cli.DataDir, "pilot.txt");
        await File.WriteAllTextAsync(scope, "alice@contoso.com\nbob\n");
        var bad = await cli.RunAsync("m365", "script", "contoso", "--scope", scope);
        Assert.Equal($"error: scope file '{scope}' line 2: 'bob' is not an email address", bad.Error.Trim());

        var config = Path.Combine(cli.DataDir, "postern.json");
        await File.WriteAllTextAsync(config, """{ "Postern": { "Regions": { "eu": { "EgressIPs": [ "198.51.100.7", "nonsense" ] } } } }""");
        var wrong = await cli.RunAsync("m365", "script", "contoso", "--config", config);
        Assert.Equal("error: Postern:Regions:eu:EgressIPs:1 'nonsense' is not an IP address", wrong.Error.Trim());

        await File.WriteAllTextAsync(config, """{ "Postern": { "ProductDomain": "mailguard.example", "Regions": { "eu": { "EgressIPs": [ "203.0.113.77", "2001:db8:77::1" ] } } } }""");
        var good = await cli.RunAsync("m365", "script", "contoso", "--config", config, "--profile", "integrated");
        Assert.Equal(0, good.Exit);
        Assert.Contains("EFSkipIPs = @('203.0.113.77', '2001:db8:77::1')", good.Out, StringComparison.Ordinal);
        Assert.Contains("SmartHosts = @('m365-array-1.eu.mailguard.example', 'm365-array-2.eu.mailguard.example')", good.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_script_written_to_a_file_with_the_key_is_for_the_owner_only()
    {
        using var cli = new CliHarness();
        var output = Path.Combine(cli.DataDir, "contoso.ps1");
        var (exit, text, error) = await cli.RunAsync("m365", "script", "contoso", "--profile", "relay", "--relay-key-file", cli.RelayKeyFile, "--output", output);
        Assert.True(exit == 0, error);
        Assert.Contains("it holds the relay key, keep it secret", text, StringComparison.Ordinal);
        Assert.DoesNotContain(TestTenants.RelayKey, text, StringComparison.Ordinal);
        Assert.Contains(TestTenants.RelayKey, await File.ReadAllTextAsync(output), StringComparison.Ordinal);
        if (!OperatingSystem.IsWindows())
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(output));

        var stdout = await cli.RunAsync("m365", "script", "contoso");
        Assert.StartsWith("<#", stdout.Out, StringComparison.Ordinal);
        Assert.DoesNotContain(TestTenants.RelayKey, stdout.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Simulate_shows_the_path_from_the_tenants_rules_and_exits_2_when_it_would_loop()
    {
        await using var exchange = await EmulatedTenantHarness.StartAsync();
        using var cli = new CliHarness();
        Assert.Equal(0, (await cli.ConnectAsync(exchange)).Exit);
        Assert.Equal(0, (await cli.RunAsync("m365", "apply", "contoso", "--relay-key-file", cli.RelayKeyFile)).Exit);
        Assert.Equal(0, (await cli.RunAsync("m365", "activate", "contoso")).Exit);

        var inbound = await cli.RunAsync("m365", "simulate", "contoso", "--from", "sender@external.test", "--to", "alice@contoso.com");
        Assert.True(inbound.Exit == 0, inbound.Out + inbound.Error);
        Assert.Contains("rule 'Postern Redirect' (priority 1) applies", inbound.Out, StringComparison.Ordinal);
        Assert.Contains("rule 'Postern Loop Check' (priority 0) applies: header X-Postern-Loop contains", inbound.Out, StringComparison.Ordinal);
        Assert.Contains("Result: passes through Postern once; no loop.", inbound.Out, StringComparison.Ordinal);

        exchange.Direct("Disable-TransportRule", ("Identity", "Postern Loop Check"));
        var looping = await cli.RunAsync("m365", "simulate", "contoso", "--from", "sender@external.test", "--to", "alice@contoso.com");
        Assert.Equal(2, looping.Exit);
        Assert.Contains("Result: would loop", looping.Out, StringComparison.Ordinal);

        var bad = await cli.RunAsync("m365", "simulate", "contoso", "--from", "sender@external.test", "--to", "alice@contoso.com", "--header", "nocolon");
        Assert.Equal("error: --header 'nocolon' is not NAME:VALUE", bad.Error.Trim());
    }

    [Fact]
    public async Task A_tenant_in_gcc_high_is_reached_with_its_clouds_token_scope_and_not_with_the_commercial_one()
    {
        await using var exchange = await EmulatedTenantHarness.StartAsync();
        exchange.Tenant.Resource = Postern.ExoEmulator.ExoEmulator.CloudResources["gcc-high"];
        using var cli = new CliHarness();

        var commercial = await cli.ConnectAsync(exchange);
        Assert.Equal(1, commercial.Exit);
        Assert.Contains("AADSTS70011", commercial.Error, StringComparison.Ordinal);
        Assert.Contains("use https://outlook.office365.us/.default", commercial.Error, StringComparison.Ordinal);

        var gccHigh = await cli.ConnectAsync(exchange, "--cloud", "gcc-high");
        Assert.True(gccHigh.Exit == 0, gccHigh.Error);
        // The cloud is stored: later commands ask for the same scope without being told.
        Assert.Equal(0, (await cli.RunAsync("m365", "plan", "contoso")).Exit);

        var bad = await cli.ConnectAsync(exchange, "--cloud", "mars");
        Assert.Equal("error: 'mars' is not a Microsoft cloud (commercial, gcc-high, dod, china)", bad.Error.Trim());
    }

    [Fact]
    public async Task An_inbound_connector_Exchange_Online_created_disabled_fails_apply_every_time_and_verify_says_why()
    {
        await using var exchange = await EmulatedTenantHarness.StartAsync();
        exchange.Tenant.OnPremisesInboundProhibited = true;
        using var cli = new CliHarness();
        Assert.Equal(0, (await cli.ConnectAsync(exchange)).Exit);

        var first = await cli.RunAsync("m365", "apply", "contoso", "--relay-key-file", cli.RelayKeyFile);

        Assert.Equal(1, first.Exit);
        Assert.Contains($"Exchange Online warns: {Postern.ExoEmulator.EmulatedTenant.CreatedDisabledWarning}", first.Out, StringComparison.Ordinal);
        Assert.Equal($"error: apply stopped at inbound connector 'From Postern': inbound connector 'From Postern' is not as applied afterwards: " +
            $"Enabled is $false, must be $true; Exchange Online warned: {Postern.ExoEmulator.EmulatedTenant.CreatedDisabledWarning}", first.Error.Trim().Split('\n')[^1]);

        // Run again, it does not "repair" the connector into a success: Exchange Online keeps it disabled, and says so.
        var second = await cli.RunAsync("m365", "apply", "contoso", "--relay-key-file", cli.RelayKeyFile);
        Assert.Equal(1, second.Exit);
        Assert.Contains($"Exchange Online warned: {Postern.ExoEmulator.EmulatedTenant.CannotEnableWarning}", second.Error, StringComparison.Ordinal);
        Assert.False((bool)exchange.Tenant.Invoke("Get-InboundConnector", null).Single()["Enabled"]!);

        var verify = await cli.RunAsync("m365", "verify", "contoso");
        Assert.Equal(2, verify.Exit);
        Assert.Contains($"disabled  inbound connector 'From Postern' (by Exchange Online: {Postern.ExoEmulator.EmulatedTenant.CannotEnableWarning} " +
            "Once Microsoft support has enabled it, run postern m365 apply contoso)", verify.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Apply_that_stops_says_what_was_done_and_exits_1()
    {
        await using var exchange = await EmulatedTenantHarness.StartAsync();
        using var cli = new CliHarness();
        Assert.Equal(0, (await cli.ConnectAsync(exchange)).Exit);
        exchange.Emulator.FailNext("Set-ArcConfig", "Try again later.");
        var (exit, output, error) = await cli.RunAsync("m365", "apply", "contoso", "--relay-key-file", cli.RelayKeyFile);
        Assert.Equal(1, exit);
        Assert.Contains("] ARC trusted sealer 'arc.postern.example': add (the list is empty) ... failed", output, StringComparison.Ordinal);
        Assert.Contains("Done: create inbound connector 'From Postern'; create outbound connector 'To Postern'; create transport rule 'Postern Loop Check'; create transport rule 'Postern Redirect'.", output, StringComparison.Ordinal);
        Assert.Contains("Not done: create ARC trusted sealer 'arc.postern.example'; create spoofed sender allow entry 'Internal: *, 198.51.100.0/24'; create spoofed sender allow entry 'External: *, 198.51.100.0/24'.", output, StringComparison.Ordinal);
        Assert.Equal("error: apply stopped at ARC trusted sealer 'arc.postern.example': Set-ArcConfig 'Default': Try again later. (ValidationException)", error.Trim());

        var again = await cli.RunAsync("m365", "apply", "contoso");
        Assert.True(again.Exit == 0, again.Error);
        Assert.Contains("Applying 3 changes", again.Out, StringComparison.Ordinal);
        var plan = await cli.RunAsync("m365", "plan", "contoso", "--json");
        Assert.Equal(0, (int)System.Text.Json.Nodes.JsonNode.Parse(plan.Out)!["changes"]!);
    }
}
