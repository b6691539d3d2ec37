using Postern.Core.Configuration;

namespace Postern.Core.Tests.Configuration;

public sealed class ListenerOptionsTests
{
    [Theory]
    [InlineData("40.92.0.0/15", true)]
    [InlineData("2a01:111:f400::/48", true)]
    [InlineData("40.92.0.1/15", false)] // host bits set: almost always a typo for a different network
    [InlineData("40.92.0.0", false)]
    [InlineData("exchange-online", false)]
    public void Allowed_client_networks_must_be_cidr_networks(string network, bool valid)
    {
        var options = new PosternOptions { Listeners = [new ListenerOptions { AllowedClientNetworks = [network] }] };

        var problems = options.Validate().Where(p => p.Contains("AllowedClientNetworks", StringComparison.Ordinal)).ToList();

        Assert.Equal(valid, problems.Count == 0);
        if (!valid)
            Assert.Equal($"Postern:Listeners:0:AllowedClientNetworks '{network}' is not a network such as 40.92.0.0/15 or 2a01:111:f400::/48 (address/prefix, host bits zero)", Assert.Single(problems));
    }
}
