using Postern.Core.Authentication;

namespace Postern.Core.Tests.Authentication;

public sealed class DkimKeyCacheTests
{
    private static readonly string[] Records =
    [
        DkimSigningKey.GenerateEd25519().DnsRecord("fabrikam.test", "a").Value,
        DkimSigningKey.GenerateEd25519().DnsRecord("fabrikam.test", "b").Value,
        DkimSigningKey.GenerateEd25519().DnsRecord("fabrikam.test", "c").Value,
    ];

    [Fact]
    public void A_record_is_parsed_once_and_the_same_key_handed_out_after()
    {
        var cache = new DkimKeyCache();
        var first = cache.Parse(Records[0]);

        Assert.Same(first, cache.Parse(Records[0]));
        Assert.Equal(1, cache.Misses);
    }

    [Fact]
    public void The_cache_is_bounded_and_drops_the_least_recently_used_record()
    {
        var cache = new DkimKeyCache(capacity: 2);
        cache.Parse(Records[0]);
        cache.Parse(Records[1]);
        cache.Parse(Records[0]); // now the most recently used
        cache.Parse(Records[2]); // evicts Records[1]

        Assert.Equal(2, cache.Count);
        Assert.Equal(3, cache.Misses);
        cache.Parse(Records[0]);
        Assert.Equal(3, cache.Misses);
        cache.Parse(Records[1]);
        Assert.Equal(4, cache.Misses);
    }

    [Fact]
    public void A_record_too_long_to_hold_is_parsed_every_time_and_never_kept()
    {
        // A sender's DNS may answer with tens of kilobytes of text; holding thousands of those would be its memory, not ours.
        var cache = new DkimKeyCache();
        var padded = Records[0] + "; n=" + new string('x', DkimKeyCache.MaxRecordLength);
        var junk = "v=DKIM1; k=rsa; p=" + new string('A', DkimKeyCache.MaxRecordLength);

        var first = cache.Parse(padded);
        Assert.NotSame(first, cache.Parse(padded));
        Assert.Equal("ed25519", first.KeyType);
        Assert.Throws<DkimKeyException>(() => cache.Parse(junk));
        Assert.Equal(0, cache.Count);
        Assert.Equal(3, cache.Misses);
    }

    [Fact]
    public void A_broken_record_is_refused_the_same_way_every_time()
    {
        var cache = new DkimKeyCache();
        var first = Assert.Throws<DkimKeyException>(() => cache.Parse("v=DKIM1; k=rsa; p="));
        var second = Assert.Throws<DkimKeyException>(() => cache.Parse("v=DKIM1; k=rsa; p="));

        Assert.Equal(first.Message, second.Message);
        Assert.False(second.Temporary);
        Assert.Equal(1, cache.Misses);
    }

    [Fact]
    public async Task A_rotated_key_record_is_used_at_once_because_dns_is_asked_for_every_message()
    {
        // Same selector, new key: what a domain publishes when it rotates without changing the selector.
        var world = AuthenticationScenario.Instance;
        var cache = new DkimKeyCache();
        var rotated = DkimSigningKey.GenerateRsa();
        var before = new InMemoryDnsResolver().AddTxt("s2048._domainkey.fabrikam.test", world.SenderKey.DnsRecord("fabrikam.test", "s2048").Value);
        var after = new InMemoryDnsResolver().AddTxt("s2048._domainkey.fabrikam.test", rotated.DnsRecord("fabrikam.test", "s2048").Value);
        var message = world.SignedBySender();

        Assert.Equal(DkimResult.Pass, Assert.Single(await new DkimChecker(new DnsDkimKeyLocator(before, cache)).VerifyAsync(message)).Result);
        var afterRotation = Assert.Single(await new DkimChecker(new DnsDkimKeyLocator(after, cache)).VerifyAsync(message));

        Assert.Equal(DkimResult.Fail, afterRotation.Result);
        Assert.Equal(2, cache.Count);
    }
}
