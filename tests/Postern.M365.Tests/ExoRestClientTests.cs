using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging;
using Postern.M365.Blueprints;
using Postern.M365.Client;
using Postern.M365.Exo;
using Postern.M365.Reconcile;

namespace Postern.M365.Tests;

public sealed class ExoRestClientTests
{
    [Fact]
    public async Task Gets_an_app_only_token_with_the_certificate_and_runs_a_cmdlet()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        var domains = await client.InvokeAsync(new CmdletInvocation("Get-AcceptedDomain"), CancellationToken.None);
        Assert.Contains(domains, d => d.GetString("DomainName") == "contoso.com" && d.GetString("DomainType") == "Authoritative");
    }

    [Fact]
    public async Task Follows_the_next_link_until_every_page_is_read()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync(EmulatedTenantHarness.SampleSeed());
        using var client = harness.Client(pageSize: 2);
        var rules = await client.InvokeAsync(new CmdletInvocation("Get-TransportRule"), CancellationToken.None);
        Assert.Equal(["Disclaimer", "Block executables", "Tag external", "Copy the board", "Partner bypass"], rules.Select(r => r.Name));
        Assert.Equal(3, harness.Emulator.Requests.Count(r => r.Cmdlet == "Get-TransportRule"));
    }

    [Theory]
    [InlineData(429)]
    [InlineData(503)]
    public async Task Waits_as_retry_after_says_when_throttled(int status)
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        harness.Emulator.Throttle(2, status, TimeSpan.FromSeconds(4));
        var domains = await client.InvokeAsync(new CmdletInvocation("Get-AcceptedDomain"), CancellationToken.None);
        Assert.NotEmpty(domains);
        Assert.Equal([TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(4)], harness.Waits);
    }

    [Fact]
    public async Task Really_waits_before_trying_again()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client(realDelays: true);
        await client.InvokeAsync(new CmdletInvocation("Get-AcceptedDomain"), CancellationToken.None);
        harness.Emulator.Throttle(1, 429, TimeSpan.FromSeconds(1));
        var watch = Stopwatch.StartNew();
        await client.InvokeAsync(new CmdletInvocation("Get-ArcConfig"), CancellationToken.None);
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(0.9), $"retried after {watch.Elapsed}");
    }

    [Fact]
    public async Task Gives_up_with_one_line_when_throttling_does_not_end()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        harness.Emulator.Throttle(100, 503, TimeSpan.FromSeconds(1));
        var error = await Assert.ThrowsAsync<ExoCommandException>(() => client.InvokeAsync(new CmdletInvocation("Get-TransportRule"), CancellationToken.None));
        Assert.Equal("Get-TransportRule: Exchange Online is still busy (HTTP 503) after 8 attempts; try again later", error.Message);
        Assert.Equal(7, harness.Waits.Count);
    }

    [Fact]
    public async Task An_exchange_error_is_one_line_naming_the_cmdlet_the_item_and_the_exception()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        var invocation = new CmdletInvocation("New-TransportRule", ("Name", "Postern Redirect"), ("RouteMessageOutboundConnector", "To Nowhere"));
        var error = await Assert.ThrowsAsync<ExoCommandException>(() => client.InvokeAsync(invocation, CancellationToken.None));
        Assert.Equal("New-TransportRule 'Postern Redirect': The operation couldn't be performed because object 'To Nowhere' couldn't be found on 'outbound connectors'. (ManagementObjectNotFoundException)", error.Message);
        Assert.True(error.IsNotFound);
        Assert.DoesNotContain('\n', error.Message);
    }

    [Fact]
    public async Task Exchange_refuses_unknown_parameters_in_its_own_error_shape()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        harness.Direct("New-TransportRule", ("Name", "r"));
        using var client = new ExoRestClient(harness.Connection(), delay: (_, _) => Task.CompletedTask) { ValidateCommands = false };
        // The trap of exo-mapping.md: Set-TransportRule has no -Enabled.
        var error = await Assert.ThrowsAsync<ExoCommandException>(() => client.InvokeAsync(
            new CmdletInvocation("Set-TransportRule", ("Identity", "r"), ("Enabled", true)), CancellationToken.None));
        Assert.Equal("System.Management.Automation.ParameterBindingException", error.ExceptionType);
        Assert.Equal(400, error.Status);
        Assert.Equal("Set-TransportRule 'r': A parameter cannot be found that matches parameter name 'Enabled'. (ParameterBindingException)", error.Message);

        var value = await Assert.ThrowsAsync<ExoCommandException>(() => client.InvokeAsync(
            new CmdletInvocation("Set-TransportRule", ("Identity", "r"), ("SenderAddressLocation", "Anywhere")), CancellationToken.None));
        Assert.Contains("Unable to match the identifier name Anywhere to a valid enumerator name", value.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Postern_refuses_to_send_a_command_outside_the_reference()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = harness.Client();
        var error = await Assert.ThrowsAsync<ExoCommandException>(() => client.InvokeAsync(
            new CmdletInvocation("Set-HostedConnectionFilterPolicy", ("Identity", "Default"), ("EnableSafeList", true)), CancellationToken.None));
        Assert.Contains("reserved for internal Microsoft use", error.Message, StringComparison.Ordinal);
        Assert.Empty(harness.Emulator.Requests);
    }

    [Fact]
    public async Task A_certificate_not_registered_on_the_app_gets_no_token()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var key = RSA.Create(2048);
        using var other = new CertificateRequest("CN=someone else", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1)
            .CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var connection = harness.Connection();
        using var client = new ExoRestClient(new ExoConnection
        {
            TenantId = connection.TenantId,
            AppId = connection.AppId,
            Certificate = other,
            Endpoint = connection.Endpoint,
            Authority = connection.Authority,
            TrustedServerCertificate = connection.TrustedServerCertificate,
        });
        var error = await Assert.ThrowsAsync<ExoCommandException>(() => client.InvokeAsync(new CmdletInvocation("Get-AcceptedDomain"), CancellationToken.None));
        Assert.StartsWith("token: Entra ID refused the app's token request:", error.Message, StringComparison.Ordinal);
        Assert.Contains("AADSTS700027", error.Message, StringComparison.Ordinal);
        Assert.Empty(harness.Emulator.Requests);
    }

    [Fact]
    public async Task A_token_exchange_online_does_not_accept_is_one_line_too()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        using var client = new ExoRestClient(harness.Connection(), tokens: new FixedToken("not-a-token"));
        var error = await Assert.ThrowsAsync<ExoCommandException>(() => client.InvokeAsync(new CmdletInvocation("Get-AcceptedDomain"), CancellationToken.None));
        Assert.Equal(401, error.Status);
        Assert.StartsWith("Get-AcceptedDomain: Exchange Online refused the token (the access token is not one this service issued)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_untrusted_server_certificate_is_refused()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        var connection = harness.Connection();
        using var client = new ExoRestClient(new ExoConnection
        {
            TenantId = connection.TenantId,
            AppId = connection.AppId,
            Certificate = connection.Certificate,
            Endpoint = connection.Endpoint,
            Authority = connection.Authority,
        }, tokens: new FixedToken("x"), delay: (_, _) => Task.CompletedTask);
        var error = await Assert.ThrowsAsync<ExoCommandException>(() => client.InvokeAsync(new CmdletInvocation("Get-AcceptedDomain"), CancellationToken.None));
        Assert.StartsWith("Get-AcceptedDomain: no answer from 127.0.0.1: its certificate is not trusted", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Nothing_secret_reaches_the_logs()
    {
        await using var harness = await EmulatedTenantHarness.StartAsync();
        var log = new StringWriter();
        var logger = new TextWriterLogger(log, LogLevel.Trace);
        using var client = harness.Client(logger: logger);
        harness.Emulator.Throttle(2, 429, TimeSpan.FromSeconds(1));
        harness.Emulator.FailNext("Set-ArcConfig", "Injected.");
        var provisioner = new Provisioner(client);
        var blueprint = TestTenants.Blueprint(ProvisioningProfile.Relay);
        var (_, first) = await provisioner.ApplyAsync(blueprint, false, log, CancellationToken.None);
        Assert.False(first.Succeeded);
        await provisioner.ApplyAsync(blueprint, false, log, CancellationToken.None);
        await provisioner.VerifyAsync(blueprint, CancellationToken.None);

        var text = log.ToString() + first.Error;
        Assert.Contains("Get-TransportRule", text, StringComparison.Ordinal);
        Assert.Contains("HTTP 429", text, StringComparison.Ordinal);
        Assert.DoesNotContain(TestTenants.RelayKey, text, StringComparison.Ordinal);
        Assert.DoesNotContain("eyJ", text, StringComparison.Ordinal); // a JWT (the access token or the client assertion)
        Assert.DoesNotContain(TestTenants.Contoso().LoopToken, text, StringComparison.Ordinal);
    }

    [Fact]
    public void The_request_body_is_the_one_the_module_sends()
    {
        var body = ExoRestClient.Body(new CmdletInvocation("Set-HostedConnectionFilterPolicy", ("Identity", "Default"),
            ("IPAllowList", ExoHashtable.Adding(["192.0.2.1"])), ("Confirm", false)));
        Assert.Equal("""{"CmdletInput":{"CmdletName":"Set-HostedConnectionFilterPolicy","Parameters":{"Identity":"Default","IPAllowList":{"Add":["192.0.2.1"],"@odata.type":"#Exchange.GenericHashTable"},"Confirm":false}}}""", body);
        Assert.Equal("""{"CmdletInput":{"CmdletName":"New-TransportRule","Parameters":{"Name":"r","SetSCL":-1,"SentTo":["a@b.example"]}}}""",
            ExoRestClient.Body(new CmdletInvocation("New-TransportRule", ("Name", "r"), ("SetSCL", -1), ("SentTo", new[] { "a@b.example" }))));
    }

    private sealed class FixedToken(string token) : IExoTokenSource
    {
        public Task<string> GetTokenAsync(CancellationToken cancellationToken) => Task.FromResult(token);
    }
}
