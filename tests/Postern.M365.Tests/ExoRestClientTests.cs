using Postern.M365.Client;
using Postern.M365.Exo;

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
}
