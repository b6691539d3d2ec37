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
            Assert.Equal($"m365-array-1.{region}.postern.example", endpoints.SmartHost);
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
        Assert.Equal("m365-array-1.eu.relay.example.net", deployment.For("eu").SmartHost);
        Assert.Equal("arc.relay.example.net", deployment.ArcSealerDomain);
        deployment.Signing.ArcDomain = "seal.relay.example.net";
        Assert.Equal("seal.relay.example.net", deployment.ArcSealerDomain);

        deployment.Regions["us"] = new RegionDeployment { EgressIPs = ["203.0.113.300"] };
        Assert.Contains("Postern:Regions:us:EgressIPs:0 '203.0.113.300' is not an IP address", deployment.Validate());
        deployment.Regions["us"] = new RegionDeployment { EgressIPs = ["2001:db8::1"] };
        Assert.Contains(deployment.Validate(), p => p.StartsWith("Postern:Regions:us:EgressIPs lists no IPv4 address", StringComparison.Ordinal));
    }
}
