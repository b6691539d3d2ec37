using Postern.Core.Tenants;
using Postern.M365.Blueprints;
using Postern.M365.Exo;

namespace Postern.M365.Tests;

public sealed class CmdletReferenceTests
{
    public static TheoryData<ProvisioningProfile, OutboundMode, string> Combinations()
    {
        var data = new TheoryData<ProvisioningProfile, OutboundMode, string>();
        foreach (var profile in Enum.GetValues<ProvisioningProfile>())
            foreach (var outbound in Enum.GetValues<OutboundMode>())
                foreach (var region in Region.All)
                    data.Add(profile, outbound, region);
        return data;
    }

    [Theory]
    [MemberData(nameof(Combinations))]
    public void Every_blueprint_command_is_in_the_cmdlet_reference(ProvisioningProfile profile, OutboundMode outbound, string region)
    {
        var scoped = new ProvisioningScope(["alice@contoso.com"], ["alice@contoso.com", "bob@contoso.com"]);
        foreach (var scope in new[] { ProvisioningScope.AllUsers, scoped })
        {
            var blueprint = TestTenants.Blueprint(profile, outbound, region, scope);
            foreach (var invocation in blueprint.Items.SelectMany(i => i.CreateInvocations()))
                Assert.Empty(CmdletReference.Default.Validate(invocation));
        }
    }

    [Fact]
    public void The_embedded_reference_is_the_shared_one()
    {
        var shared = Path.Combine(RepositoryRoot(), "..", "shared", "reference", "exo-cmdlets.json");
        if (!File.Exists(shared))
            return; // Outside the workspace only the embedded copy exists.
        var embedded = Path.Combine(RepositoryRoot(), "src", "Postern.M365", "Exo", "exo-cmdlets.json");
        Assert.Equal(File.ReadAllText(shared), File.ReadAllText(embedded));
    }

    [Theory]
    [InlineData("Set-TransportRule", "Enabled", true, "no such parameter")]
    [InlineData("New-TransportRule", "SentToScope", "ExternalPartner", "accepted only on-premises")]
    [InlineData("New-TransportRule", "Mode", "Sometimes", "is not one of")]
    [InlineData("New-TransportRule", "SetSCL", 10, "is not -1 or 0..9")]
    [InlineData("New-TransportRule", "DomainController", "dc1.contoso.com", "does not apply to Exchange Online")]
    [InlineData("New-InboundConnector", "SenderIPAddresses", "2001:db8::1", "is not an IPv4 address")]
    [InlineData("New-InboundConnector", "SenderIPAddresses", "192.0.2.1-192.0.2.9", "is not an IPv4 address")]
    [InlineData("New-InboundConnector", "EFTestMode", true, "reserved for internal Microsoft use")]
    [InlineData("New-TenantAllowBlockListSpoofItems", "SendingInfrastructure", "192.0.2.1/25", "is not written <IPv4 address>/24")]
    [InlineData("Set-HostedConnectionFilterPolicy", "EnableSafeList", true, "reserved for internal Microsoft use")]
    [InlineData("Set-HostedConnectionFilterPolicy", "IPAllowList", "2001:db8::1", "is not an IPv4 address")]
    [InlineData("New-OutboundConnector", "TlsSettings", "Strict", "is not one of")]
    public void Refuses_what_exchange_online_would_refuse_or_ignore(string cmdlet, string parameter, object value, string problem)
    {
        var invocation = new CmdletInvocation(cmdlet, ("Identity", "x"), ("Name", "x"), (parameter, value));
        Assert.Contains(CmdletReference.Default.Validate(invocation), p => p.Contains($"-{parameter}", StringComparison.Ordinal) && p.Contains(problem, StringComparison.Ordinal));
    }

    [Fact]
    public void Reports_missing_mandatory_parameters()
    {
        var problems = CmdletReference.Default.Validate(new CmdletInvocation("New-InboundConnector", ("Name", "x")));
        Assert.Contains("New-InboundConnector: mandatory parameter -SenderDomains is missing", problems);
    }

    internal static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Postern.slnx")))
            directory = directory.Parent;
        return directory?.FullName ?? throw new InvalidOperationException("repository root not found");
    }
}
