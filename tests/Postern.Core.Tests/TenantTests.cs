using Postern.Core.Relay;
using Postern.Core.Storage;
using Postern.Core.Tenants;
using Postern.Smtp;

namespace Postern.Core.Tests;

public sealed class TenantTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("postern-db-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("Contoso.TEST", "contoso.test")]
    [InlineData("bücher.example", "xn--bcher-kva.example")]
    [InlineData("contoso.test.", null)]
    [InlineData("[127.0.0.1]", null)]
    [InlineData("contoso", null)]
    [InlineData("-bad.test", null)]
    [InlineData("a..b", null)]
    [InlineData("con toso.test", null)]
    public void Domain_names_are_normalised_or_refused(string input, string? expected) =>
        Assert.Equal(expected, DomainName.Normalize(input));

    [Theory]
    [InlineData("mx.contoso.test", "mx.contoso.test", 25)]
    [InlineData("127.0.0.1:2526", "127.0.0.1", 2526)]
    [InlineData("[::1]:2527", "::1", 2527)]
    [InlineData("MX.Contoso.Test:587", "mx.contoso.test", 587)]
    public void Mta_addresses_parse(string input, string host, int port) =>
        Assert.Equal(new MtaAddress(host, port), MtaAddress.Parse(input));

    [Theory]
    [InlineData("host:0")]
    [InlineData("host:99999")]
    [InlineData("bad host")]
    public void Bad_mta_addresses_name_the_value(string input)
    {
        var error = Assert.Throws<PosternException>(() => MtaAddress.Parse(input));
        Assert.Contains(input, error.Message);
    }

    [Fact]
    public void Relay_keys_are_checked_by_hash_and_never_stored_in_clear()
    {
        var key = RelayKey.Generate();
        var stored = RelayKey.Hash(key);
        Assert.True(RelayKey.Matches(RelayKey.Hash(key), stored));
        Assert.False(RelayKey.Matches(RelayKey.Hash(key + "x"), stored));
        Assert.False(RelayKey.Matches(RelayKey.Hash(key), null));
        Assert.DoesNotContain(key, Convert.ToHexString(stored), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Store_changes_bump_the_generation_so_running_servers_reload()
    {
        var store = new TenantStore(new PosternDatabase(_dir));
        var before = store.ReadGeneration();
        var tenant = store.AddTenant("contoso", Guid.NewGuid(), "eu", false);
        store.AddDomain(tenant, "contoso.test", [new MtaAddress("127.0.0.1", 2526)]);
        Assert.True(store.ReadGeneration() > before);
        Assert.Equal("contoso", store.GetTenant(tenant.Id.ToString()).Name);
        Assert.Equal("contoso", store.GetTenant("CONTOSO").Name);
        var duplicate = Assert.Throws<PosternException>(() => store.AddDomain(tenant, "CONTOSO.test", []));
        Assert.Contains("contoso.test", duplicate.Message);
        Assert.Throws<PosternException>(() => store.AddDomain(tenant, "b.test", Enumerable.Repeat(new MtaAddress("a.test", 25), 4).ToArray()));
    }

    private static RoutingTable Table(bool relayEnabled = true, OutboundMode outbound = OutboundMode.Direct)
    {
        var tenant = new Tenant
        {
            Id = Guid.NewGuid(),
            Name = "contoso",
            Region = "eu",
            LoopToken = LoopToken.Generate(),
            CreatedAt = DateTimeOffset.UtcNow,
            RelayKeyHash = relayEnabled ? RelayKey.Hash("k") : null,
            Outbound = outbound,
        };
        return new RoutingTable(1, [tenant], [new ProtectedDomain("contoso.test", tenant.Id, [])]);
    }

    private static SmtpAddress Address(string local, string domain) => new(local, domain);

    [Theory]
    [InlineData("bob", "contoso.test", true)]
    [InlineData("bob", "CONTOSO.Test", true)]
    [InlineData("bob", "fabrikam.test", false)]
    [InlineData("bob%fabrikam.test", "contoso.test", false)]
    [InlineData("fabrikam.test!bob", "contoso.test", false)]
    [InlineData("\"bob@fabrikam.test\"", "contoso.test", false)]
    [InlineData("bob", "[127.0.0.1]", false)]
    [InlineData("bob", "[IPv6:::1]", false)]
    [InlineData("bob", "contoso.test.", false)]
    [InlineData("bob", "evilcontoso.test", false)]
    [InlineData("bob", "contoso.test.fabrikam.test", false)]
    [InlineData("bob", "sub.contoso.test", false)]
    [InlineData("bob", "cοntoso.test", false)]
    [InlineData("bob", "contoso.tеst", false)]
    [InlineData("postmaster", "", false)]
    public void Inbound_recipients_are_accepted_only_for_exact_protected_domains(string local, string domain, bool accepted)
    {
        var reply = RecipientPolicy.Check(Table(), Address("x", "internet.test"), Address(local, domain));
        Assert.Equal(accepted, reply is null);
        if (reply is not null)
            Assert.Equal((550, "5.7.1"), (reply.Code, reply.EnhancedCode));
    }

    [Fact]
    public void Outbound_recipients_need_a_tenant_sender_with_outbound_on_and_the_relay_enabled()
    {
        Assert.Null(RecipientPolicy.Check(Table(), Address("alice", "contoso.test"), Address("x", "fabrikam.test")));
        Assert.NotNull(RecipientPolicy.Check(Table(outbound: OutboundMode.Off), Address("alice", "contoso.test"), Address("x", "fabrikam.test")));
        Assert.NotNull(RecipientPolicy.Check(Table(relayEnabled: false), Address("alice", "contoso.test"), Address("x", "fabrikam.test")));
        Assert.NotNull(RecipientPolicy.Check(Table(), Address("alice%x", "contoso.test"), Address("x", "fabrikam.test")));
        Assert.NotNull(RecipientPolicy.Check(Table(), SmtpAddress.Null, Address("x", "fabrikam.test")));
    }
}
