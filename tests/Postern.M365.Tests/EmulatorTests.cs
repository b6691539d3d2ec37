using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Postern.ExoEmulator;
using Postern.M365.Client;
using Postern.M365.Exo;

namespace Postern.M365.Tests;

/// <summary>The emulator keeps state the way Exchange Online does.</summary>
public sealed class EmulatorTests
{
    private static EmulatedTenant Tenant() => new ExoEmulator.ExoEmulator().AddTenant(Guid.NewGuid(), "fabrikam.onmicrosoft.com");

    private static JsonObject P(params (string Name, object Value)[] parameters)
    {
        var json = new JsonObject();
        foreach (var (name, value) in parameters)
            json[name] = value switch
            {
                string[] list => new JsonArray([.. list.Select(x => (JsonNode)JsonValue.Create(x))]),
                JsonNode node => node,
                string s => JsonValue.Create(s),
                bool b => JsonValue.Create(b),
                int i => JsonValue.Create(i),
                _ => throw new ArgumentException("value"),
            };
        return json;
    }

    private static string[] RuleNames(EmulatedTenant tenant) => tenant.Invoke("Get-TransportRule", null).Select(r => (string)r["Name"]!).ToArray();

    [Fact]
    public void A_header_and_its_words_or_its_value_are_taken_only_together()
    {
        var tenant = new ExoEmulator.ExoEmulator().AddTenant(Guid.NewGuid(), "fabrikam.onmicrosoft.com");
        tenant.Invoke("New-TransportRule", P(("Name", "tag"), ("SetHeaderName", "X-Tag"), ("SetHeaderValue", "1")));

        var value = Assert.Throws<ExoError>(() => tenant.Invoke("Set-TransportRule", P(("Identity", "tag"), ("SetHeaderValue", "2"))));
        Assert.Contains("SetHeaderValue parameter can't be used without the SetHeaderName parameter", value.Message, StringComparison.Ordinal);
        var words = Assert.Throws<ExoError>(() => tenant.Invoke("New-TransportRule", P(("Name", "loop"), ("HeaderContainsWords", "token"))));
        Assert.Contains("without the HeaderContainsMessageHeader parameter", words.Message, StringComparison.Ordinal);
        tenant.Invoke("Set-TransportRule", P(("Identity", "tag"), ("SetHeaderName", "X-Tag"), ("SetHeaderValue", "2")));
        Assert.Equal("2", (string?)tenant.Invoke("Get-TransportRule", P(("Identity", "tag")))[0]["SetHeaderValue"]);
    }

    [Fact]
    public void A_new_rule_without_priority_goes_last_and_with_one_the_others_shift()
    {
        var tenant = Tenant();
        tenant.Invoke("New-TransportRule", P(("Name", "a")));
        tenant.Invoke("New-TransportRule", P(("Name", "b")));
        tenant.Invoke("New-TransportRule", P(("Name", "c")));
        Assert.Equal(["a", "b", "c"], RuleNames(tenant));
        tenant.Invoke("New-TransportRule", P(("Name", "top"), ("Priority", 0)));
        tenant.Invoke("New-TransportRule", P(("Name", "end"), ("Priority", 4)));
        Assert.Equal(["top", "a", "b", "c", "end"], RuleNames(tenant));
        Assert.Equal([0, 1, 2, 3, 4], tenant.Invoke("Get-TransportRule", null).Select(r => (int)r["Priority"]!));
        var error = Assert.Throws<ExoError>(() => tenant.Invoke("New-TransportRule", P(("Name", "x"), ("Priority", 6))));
        Assert.Equal("The value of Priority must be between 0 and 5.", error.Message);

        tenant.Invoke("Set-TransportRule", P(("Identity", "end"), ("Priority", 1)));
        Assert.Equal(["top", "end", "a", "b", "c"], RuleNames(tenant));
        tenant.Invoke("Remove-TransportRule", P(("Identity", "top")));
        Assert.Equal(0, (int)tenant.Invoke("Get-TransportRule", P(("Identity", "end")))[0]["Priority"]!);
    }

    [Fact]
    public void Names_are_unique_and_rules_route_only_to_existing_connectors()
    {
        var tenant = Tenant();
        tenant.Invoke("New-TransportRule", P(("Name", "Same")));
        Assert.Contains("already exists", Assert.Throws<ExoError>(() => tenant.Invoke("New-TransportRule", P(("Name", "SAME")))).Message, StringComparison.Ordinal);
        var connector = P(("Name", "To X"), ("UseMXRecord", false), ("SmartHosts", new[] { "x.example" }), ("IsTransportRuleScoped", true));
        tenant.Invoke("New-OutboundConnector", connector);
        Assert.Throws<ExoError>(() => tenant.Invoke("New-OutboundConnector", (JsonObject)connector.DeepClone()));

        var missing = Assert.Throws<ExoError>(() => tenant.Invoke("New-TransportRule", P(("Name", "r"), ("RouteMessageOutboundConnector", "To Y"))));
        Assert.Equal(404, missing.Status);
        tenant.Invoke("New-TransportRule", P(("Name", "r"), ("RouteMessageOutboundConnector", "to x")));
        Assert.Equal("To X", (string?)tenant.Invoke("Get-TransportRule", P(("Identity", "r")))[0]["RouteMessageOutboundConnector"]);
        var inUse = Assert.Throws<ExoError>(() => tenant.Invoke("Remove-OutboundConnector", P(("Identity", "To X"))));
        Assert.Contains("used by transport rule(s): r", inUse.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Set_arc_config_replaces_the_whole_list()
    {
        var tenant = Tenant();
        tenant.Invoke("Set-ArcConfig", P(("Identity", "Default"), ("ArcTrustedSealers", new[] { "a.example", "b.example" })));
        tenant.Invoke("Set-ArcConfig", P(("Identity", "Default"), ("ArcTrustedSealers", new[] { "c.example" })));
        Assert.Equal("c.example", (string?)tenant.Invoke("Get-ArcConfig", null)[0]["ArcTrustedSealers"]);
        tenant.Invoke("Set-ArcConfig", P(("Identity", $"{tenant.TenantId}\\Default"), ("ArcTrustedSealers", new[] { "a.example", "c.example" })));
        Assert.Equal("a.example,c.example", (string?)tenant.Invoke("Get-ArcConfig", null)[0]["ArcTrustedSealers"]);
        tenant.Invoke("Set-ArcConfig", P(("Identity", "Default"), ("ArcTrustedSealers", new[] { " " })));
        Assert.Null(tenant.Invoke("Get-ArcConfig", null)[0]["ArcTrustedSealers"]);
        Assert.Throws<ExoError>(() => tenant.Invoke("Set-ArcConfig", P(("ArcTrustedSealers", new[] { "a.example" }))));
    }

    [Fact]
    public void The_ip_allow_list_takes_add_and_remove_and_refuses_ipv6()
    {
        var tenant = Tenant();
        tenant.Invoke("Set-HostedConnectionFilterPolicy", P(("Identity", "Default"), ("IPAllowList", new[] { "192.0.2.1" })));
        tenant.Invoke("Set-HostedConnectionFilterPolicy", P(("Identity", "Default"), ("IPAllowList", JsonNode.Parse("""{"Add":["198.51.100.0/24"],"@odata.type":"#Exchange.GenericHashTable"}""")!)));
        Assert.Equal(["192.0.2.1", "198.51.100.0/24"], tenant.Invoke("Get-HostedConnectionFilterPolicy", null)[0]["IPAllowList"]!.AsArray().Select(x => (string)x!));
        tenant.Invoke("Set-HostedConnectionFilterPolicy", P(("Identity", "Default"), ("IPAllowList", JsonNode.Parse("""{"Remove":["192.0.2.1"]}""")!)));
        Assert.Equal(["198.51.100.0/24"], tenant.Invoke("Get-HostedConnectionFilterPolicy", null)[0]["IPAllowList"]!.AsArray().Select(x => (string)x!));
        Assert.Throws<ExoError>(() => tenant.Invoke("Set-HostedConnectionFilterPolicy", P(("Identity", "Default"), ("IPAllowList", new[] { "2001:db8::1" }))));
        Assert.Throws<ExoError>(() => tenant.Invoke("Set-HostedConnectionFilterPolicy", P(("Identity", "Default"), ("IPAllowList", new[] { "192.0.2.0/16" }))));
    }

    [Theory]
    [InlineData("New-TenantAllowBlockListSpoofItems", "SendingInfrastructure", "192.0.2.1/25")]
    [InlineData("New-InboundConnector", "SenderIPAddresses", "2001:db8::1")]
    [InlineData("New-InboundConnector", "TlsSenderCertificateName", "mail.*.example")]
    [InlineData("New-InboundConnector", "ConnectorType", "Hybrid")]
    [InlineData("New-TransportRule", "SentToScope", "ExternalPartner")]
    [InlineData("New-TransportRule", "Frobnicate", "yes")]
    [InlineData("New-TransportRule", "DomainController", "dc1.contoso.com")]
    public void Refuses_parameters_and_values_exchange_online_does_not_take(string cmdlet, string parameter, string value)
    {
        var tenant = Tenant();
        var parameters = P(("Name", "x"), ("SenderDomains", new[] { "*" }), ("Identity", "Default"), ("Action", "Allow"),
            ("SpoofType", "External"), ("SpoofedUser", "*"), ("SendingInfrastructure", "192.0.2.0/24"));
        foreach (var name in parameters.Select(p => p.Key).ToArray())
            if (ExoNames(cmdlet).All(n => !n.Equals(name, StringComparison.OrdinalIgnoreCase)))
                parameters.Remove(name);
        parameters[parameter] = value;
        var error = Assert.Throws<ExoError>(() => tenant.Invoke(cmdlet, parameters));
        Assert.Equal(400, error.Status);
        Assert.Contains(parameter, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_inbound_connector_keeps_its_type()
    {
        var tenant = Tenant();
        tenant.Invoke("New-InboundConnector", P(("Name", "in"), ("SenderDomains", new[] { "*" }), ("ConnectorType", "OnPremises")));
        var error = Assert.Throws<ExoError>(() => tenant.Invoke("Set-InboundConnector", P(("Identity", "in"), ("ConnectorType", "Partner"))));
        Assert.EndsWith("ErrorInboundConnectorConnectorTypeCannotChangeException", error.ExceptionType, StringComparison.Ordinal);
        Assert.Equal(["smtp:*;1"], tenant.Invoke("Get-InboundConnector", null)[0]["SenderDomains"]!.AsArray().Select(x => (string)x!));
    }

    [Fact]
    public void A_seed_creates_rules_and_connectors_through_the_cmdlets()
    {
        var emulator = new ExoEmulator.ExoEmulator();
        EmulatorSeed.Parse(EmulatedTenantHarness.SampleSeed()).ApplyTo(emulator);
        var tenant = emulator.Tenant(TestTenants.ContosoId);
        Assert.Equal(["Disclaimer", "Block executables", "Tag external", "Copy the board", "Partner bypass"], RuleNames(tenant));
        Assert.Equal("Disabled", (string?)tenant.Invoke("Get-TransportRule", P(("Identity", "Block executables")))[0]["State"]);
        Assert.Equal("Gateway Outbound", (string?)tenant.Invoke("Get-OutboundConnector", null).Single()["Name"]);
        Assert.Equal("Gateway Inbound", (string?)tenant.Invoke("Get-InboundConnector", null).Single()["Name"]);
        Assert.Single(tenant.Apps);

        var bad = Assert.Throws<InvalidDataException>(() => EmulatorSeed.Parse("""{"tenants":[{"tenantId":"0f0f0f0f-0000-0000-0000-000000000001","organization":"x.onmicrosoft.com","transportRules":[{"Name":"r","Enabled":"yes"}]}]}""").ApplyTo(new ExoEmulator.ExoEmulator()));
        Assert.StartsWith("seed: tenant x.onmicrosoft.com: transport rule #1 (r): Cannot bind parameter 'Enabled'", bad.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Throttles_with_retry_after_and_checks_the_token_over_https()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, c, _, _) => c!.Thumbprint == harness.Server.TlsCertificate.Thumbprint };
        using var http = new HttpClient(handler) { BaseAddress = harness.Server.BaseAddress };
        var body = new StringContent("""{"CmdletInput":{"CmdletName":"Get-ArcConfig","Parameters":{}}}""", System.Text.Encoding.UTF8, "application/json");

        harness.Emulator.Throttle(1, 429, TimeSpan.FromSeconds(5));
        using var throttled = await http.PostAsync($"adminapi/beta/{TestTenants.ContosoId}/InvokeCommand", body);
        Assert.Equal(HttpStatusCode.TooManyRequests, throttled.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(5), throttled.Headers.RetryAfter?.Delta);

        using var anonymous = await http.PostAsync($"adminapi/beta/{TestTenants.ContosoId}/InvokeCommand", body);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);

        using var token = await http.PostAsync($"{TestTenants.ContosoId}/oauth2/v2.0/token", new FormUrlEncodedContent(new Dictionary<string, string>
        {
            ["grant_type"] = "client_credentials",
            ["client_id"] = EmulatedTenantHarness.AppId,
            ["scope"] = "https://outlook.office365.com/.default",
            ["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ["client_assertion"] = "e30.e30.c2ln",
        }));
        Assert.Equal(HttpStatusCode.Unauthorized, token.StatusCode);
        Assert.Equal("invalid_client", (string?)JsonNode.Parse(await token.Content.ReadAsStringAsync())!["error"]);
    }

    [Fact]
    public async Task Throttling_set_over_http_can_wait_for_some_calls_and_single_out_one_cmdlet()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var handler = new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, c, _, _) => c!.Thumbprint == harness.Server.TlsCertificate.Thumbprint };
        using var http = new HttpClient(handler) { BaseAddress = harness.Server.BaseAddress };
        using var set = await http.PostAsync("_emulator/throttle", Json("""{"count":1,"status":503,"retryAfterSeconds":2,"after":2,"cmdlet":"Set-ArcConfig"}"""));
        Assert.Equal(HttpStatusCode.NoContent, set.StatusCode);

        // Without a token a call that is not throttled is refused as unauthorised: throttling comes first.
        async Task<HttpResponseMessage> Call(string cmdlet) =>
            await http.PostAsync($"adminapi/beta/{TestTenants.ContosoId}/InvokeCommand", Json(new JsonObject { ["CmdletInput"] = new JsonObject { ["CmdletName"] = cmdlet, ["Parameters"] = new JsonObject() } }.ToJsonString()));
        var statuses = new List<HttpStatusCode>();
        foreach (var cmdlet in new[] { "Get-ArcConfig", "Set-ArcConfig", "set-arcconfig", "Get-TransportRule" })
        {
            using var passed = await Call(cmdlet);
            statuses.Add(passed.StatusCode);
        }
        Assert.All(statuses, s => Assert.Equal(HttpStatusCode.Unauthorized, s));
        using var throttled = await Call("Set-ArcConfig");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, throttled.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(2), throttled.Headers.RetryAfter?.Delta);
        using var after = await Call("Set-ArcConfig");
        Assert.Equal(HttpStatusCode.Unauthorized, after.StatusCode);
        Assert.Equal(["Set-ArcConfig"], harness.Emulator.ThrottledCmdlets);
    }

    private static StringContent Json(string text) => new(text, System.Text.Encoding.UTF8, "application/json");

    /// <summary>One command starts it, as the docs say: the sample seed, an app certificate made by the emulator, a loopback port.</summary>
    [Fact]
    public async Task Starts_from_the_command_line_with_the_sample_seed()
    {
        var directory = Directory.CreateTempSubdirectory("postern-exo-");
        try
        {
            var emulatorDll = typeof(ExoEmulatorServer).Assembly.Location;
            var sample = Path.Combine(CmdletReferenceTests.RepositoryRoot(), "tools", "Postern.ExoEmulator", "samples", "contoso.json");
            File.Copy(sample, Path.Combine(directory.FullName, "seed.json"));
            var (exit, output) = await RunAsync(emulatorDll, ["new-app-certificate", Path.Combine(directory.FullName, "app.pfx")]);
            Assert.True(exit == 0, output);
            Assert.True(File.Exists(Path.Combine(directory.FullName, "app.cer")));

            var pem = Path.Combine(directory.FullName, "tls.pem");
            using var process = Start(emulatorDll, ["--urls", "https://127.0.0.1:0", "--seed", Path.Combine(directory.FullName, "seed.json"), "--tls-certificate-out", pem]);
            try
            {
                var address = await ReadUntilAsync(process, "listening on ", TimeSpan.FromSeconds(30));
                using var certificate = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(directory.FullName, "app.pfx"), null);
                using var client = new ExoRestClient(new ExoConnection
                {
                    TenantId = TestTenants.ContosoId,
                    AppId = "8d3c2b1a-0f9e-4d8c-b7a6-5e4d3c2b1a0f",
                    Certificate = certificate,
                    Endpoint = new Uri(address),
                    Authority = new Uri(address),
                    TrustedServerCertificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPem(await File.ReadAllTextAsync(pem)),
                });
                var rules = await client.InvokeAsync(new CmdletInvocation("Get-TransportRule"), CancellationToken.None);
                Assert.Equal(5, rules.Count);
            }
            finally
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    private static IEnumerable<string> ExoNames(string cmdlet) => CmdletReference.Default.Parameters(cmdlet).Select(p => p.Name);

    private static Process Start(string dll, string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(dll);
        foreach (var arg in args)
            info.ArgumentList.Add(arg);
        return Process.Start(info)!;
    }

    private static async Task<(int Exit, string Output)> RunAsync(string dll, string[] args)
    {
        using var process = Start(dll, args);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var output = await process.StandardOutput.ReadToEndAsync(timeout.Token);
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, output + await process.StandardError.ReadToEndAsync(timeout.Token));
    }

    /// <summary>The rest of the first output line containing <paramref name="marker"/>, waiting at most <paramref name="deadline"/>.</summary>
    private static async Task<string> ReadUntilAsync(Process process, string marker, TimeSpan deadline)
    {
        using var timeout = new CancellationTokenSource(deadline);
        while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
        {
            var at = line.IndexOf(marker, StringComparison.Ordinal);
            if (at >= 0)
                return line[(at + marker.Length)..].Trim();
        }
        throw new InvalidOperationException("the emulator ended without saying where it listens: " + await process.StandardError.ReadToEndAsync());
    }
}
