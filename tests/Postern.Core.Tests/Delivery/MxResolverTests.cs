using System.Net;
using Postern.Core.Authentication;
using Postern.Core.Delivery;
using Postern.Core.Tenants;

namespace Postern.Core.Tests.Delivery;

/// <summary>Delivery's MX and address lookups go through the node's one <see cref="IDnsResolver"/>.</summary>
public sealed class MxResolverTests
{
    [Fact]
    public async Task Mx_hosts_come_by_preference_and_a_domain_without_mx_is_its_own_host()
    {
        var dns = new InMemoryDnsResolver()
            .AddMx("contoso.test", 20, "backup.contoso.test.")
            .AddMx("contoso.test", 10, "MX1.Contoso.Test.")
            .AddAddress("plain.test", "192.0.2.7");
        var resolver = new MxResolver(dns);

        Assert.Equal([new MtaAddress("mx1.contoso.test", 25), new MtaAddress("backup.contoso.test", 25)], await resolver.ResolveAsync("contoso.test", 25, default));
        Assert.Equal([new MtaAddress("plain.test", 2525)], await resolver.ResolveAsync("plain.test", 2525, default));
        Assert.Contains("MX contoso.test", dns.Queries);
    }

    [Fact]
    public async Task A_dns_timeout_is_a_temporary_failure_and_an_ip_literal_needs_no_lookup()
    {
        var dns = new InMemoryDnsResolver().AddTimeout("slow.test").AddAddress("mx.fast.test", "192.0.2.1").AddAddress("mx.fast.test", "2001:db8::1");
        var resolver = new MxResolver(dns);

        var mx = await Assert.ThrowsAsync<DnsLookupFailedException>(() => resolver.ResolveAsync("slow.test", 25, default));
        Assert.Contains("slow.test", mx.Message);
        await Assert.ThrowsAsync<DnsLookupFailedException>(() => resolver.ResolveHostAsync("slow.test", default));
        Assert.Equal([IPAddress.Parse("192.0.2.1"), IPAddress.Parse("2001:db8::1")], await resolver.ResolveHostAsync("mx.fast.test", default));
        Assert.Equal([IPAddress.Loopback], await resolver.ResolveHostAsync("127.0.0.1", default));
        Assert.DoesNotContain(dns.Queries, q => q.Contains("127.0.0.1", StringComparison.Ordinal));
    }
}
