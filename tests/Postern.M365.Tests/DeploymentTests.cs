using Postern.M365.Deployment;

namespace Postern.M365.Tests;

public sealed class DeploymentTests
{
    [Fact]
    public void Every_region_has_documentation_range_egress_addresses_ipv4_and_ipv6_by_default()
    {
        var deployment = new M365Deployment().ApplyDefaults();
        foreach (var region in Core.Tenants.Region.All)
        {
            var endpoints = deployment.For(region);
            Assert.NotEmpty(endpoints.EgressIPv4);
            Assert.NotEmpty(endpoints.EgressIPv6);
            Assert.Equal([$"m365-array-1.{region}.postern.example", $"m365-array-2.{region}.postern.example"], endpoints.SmartHosts);
            Assert.Equal($"*.{region}.postern.example", endpoints.CertificateSubject);
        }
        Assert.Empty(deployment.Validate());
    }

    [Fact]
    public void Configured_addresses_replace_the_defaults_and_bad_ones_are_named()
    {
        var deployment = new M365Deployment { ProductDomain = "relay.example.net" };
        deployment.Regions["eu"] = new RegionDeployment { EgressIPs = ["203.0.113.9", "2001:db8::9"] };
        deployment.ApplyDefaults();
        Assert.Equal(["203.0.113.9"], deployment.For("eu").EgressIPv4.Select(a => a.ToString()));
        Assert.Equal(["m365-array-1.eu.relay.example.net", "m365-array-2.eu.relay.example.net"], deployment.For("eu").SmartHosts);
        Assert.Equal("arc.relay.example.net", deployment.ArcSealerDomain);
        deployment.Signing.ArcDomain = "seal.relay.example.net";
        Assert.Equal("seal.relay.example.net", deployment.ArcSealerDomain);

        deployment.Regions["us"] = new RegionDeployment { EgressIPs = ["203.0.113.300"] };
        Assert.Contains("Postern:Regions:us:EgressIPs:0 '203.0.113.300' is not an IP address", deployment.Validate());
        deployment.Regions["au"] = new RegionDeployment { EgressIPs = ["192.0.2.7"], SmartHosts = ["mx-a.au.relay.example.net", "not a host"] };
        Assert.Contains("Postern:Regions:au:SmartHosts:1 'not a host' is not a host name", deployment.Validate());
        deployment.Regions["us"] = new RegionDeployment { EgressIPs = ["2001:db8::1"] };
        Assert.Contains(deployment.Validate(), p => p.StartsWith("Postern:Regions:us:EgressIPs lists no IPv4 address", StringComparison.Ordinal));
    }
}

/// <summary>What every profile asks of Exchange Online besides its connectors and rules.</summary>
public sealed class SendingInfrastructureTests
{
    public static TheoryData<Blueprints.ProvisioningProfile> Profiles() => new(Enum.GetValues<Blueprints.ProvisioningProfile>());

    [Theory]
    [MemberData(nameof(Profiles))]
    public void Every_profile_allows_Postern_as_sending_infrastructure_for_external_and_internal_spoofed_senders(Blueprints.ProvisioningProfile profile)
    {
        var entries = TestTenants.Blueprint(profile).Items.OfType<Blueprints.SpoofAllowItem>();

        // Microsoft's in-and-out guidance: one External and one Internal entry, the service's IP as its /24.
        Assert.Equal(["Internal *, 198.51.100.0/24", "External *, 198.51.100.0/24"],
            entries.Select(e => $"{e.SpoofType} {e.SpoofedUser}, {e.SendingInfrastructure}"));
    }

    [Fact]
    public void With_a_ptr_domain_the_entries_name_it_instead_of_the_addresses()
    {
        var deployment = new M365Deployment();
        deployment.Regions["eu"] = new RegionDeployment { EgressIPs = ["198.51.100.25", "203.0.113.25"], PtrDomain = "EU.Postern.Example." };
        deployment.ApplyDefaults();
        var blueprint = Blueprints.BlueprintBuilder.Build(new Blueprints.BlueprintRequest
        {
            Tenant = TestTenants.Contoso("eu", Core.Tenants.OutboundMode.Direct),
            Domains = TestTenants.Domains,
            Profile = Blueprints.ProvisioningProfile.Integrated,
        }, deployment);

        Assert.Equal(["Internal eu.postern.example", "External eu.postern.example"],
            blueprint.Items.OfType<Blueprints.SpoofAllowItem>().Select(e => $"{e.SpoofType} {e.SendingInfrastructure}"));
        deployment.Regions["eu"].PtrDomain = "not a domain";
        Assert.Contains("Postern:Regions:eu:PtrDomain 'not a domain' is not a domain name", deployment.Validate());
    }

    [Fact]
    public void A_region_with_one_smart_host_is_warned_about()
    {
        var deployment = new M365Deployment();
        deployment.Regions["eu"] = new RegionDeployment { SmartHosts = ["mx.eu.postern.example"] };
        deployment.ApplyDefaults();
        var blueprint = Blueprints.BlueprintBuilder.Build(new Blueprints.BlueprintRequest
        {
            Tenant = TestTenants.Contoso("eu", Core.Tenants.OutboundMode.Direct),
            Domains = TestTenants.Domains,
        }, deployment);

        Assert.Contains(blueprint.Warnings, w => w.StartsWith("region 'eu' has one smart host (mx.eu.postern.example)", StringComparison.Ordinal));
        Assert.DoesNotContain(TestTenants.Blueprint(Blueprints.ProvisioningProfile.Integrated).Warnings, w => w.Contains("smart host", StringComparison.Ordinal));
    }
}

public sealed class CloudTests
{
    [Theory]
    [InlineData("commercial", "https://outlook.office365.com/", "https://login.microsoftonline.com/", "https://outlook.office365.com/.default")]
    [InlineData("gcc-high", "https://outlook.office365.us/", "https://login.microsoftonline.us/", "https://outlook.office365.us/.default")]
    [InlineData("O365USGovDoD", "https://webmail.apps.mil/", "https://login.microsoftonline.us/", "https://outlook-dod.office365.us/.default")]
    [InlineData("china", "https://partner.outlook.cn/", "https://login.chinacloudapi.cn/", "https://partner.outlook.cn/.default")]
    public void A_connection_takes_its_endpoint_authority_and_token_scope_from_its_cloud(string cloud, string endpoint, string authority, string scope)
    {
        using var certificate = System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadCertificate(
            new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=t", System.Security.Cryptography.RSA.Create(2048),
                System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1)
            .CreateSelfSigned(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddDays(1)).RawData);
        var connection = new Client.ExoConnection { TenantId = Guid.NewGuid(), AppId = "a", Certificate = certificate, Cloud = Client.ExoCloud.Parse(cloud) };

        Assert.Equal(endpoint, connection.Endpoint.ToString());
        Assert.Equal(authority, connection.Authority.ToString());
        Assert.Equal(scope, connection.TokenScope);
        Assert.True(Client.ExoCloud.IsMicrosoftAuthority(connection.Authority));
        // An emulator's endpoint keeps the cloud's scope: the scope is the tenant's cloud, not the host asked.
        var emulated = new Client.ExoConnection
        {
            TenantId = connection.TenantId,
            AppId = "a",
            Certificate = certificate,
            Cloud = connection.Cloud,
            Endpoint = new Uri("https://127.0.0.1:5443/"),
            Authority = new Uri("https://127.0.0.1:5443/"),
        };
        Assert.Equal(scope, emulated.TokenScope);
        Assert.False(Client.ExoCloud.IsMicrosoftAuthority(emulated.Authority));
    }
}
