using System.Text;
using Postern.Core.Configuration;
using Postern.Core.Relay;
using Postern.Core.Spool;
using Postern.Core.Tenants;
using Postern.Smtp;

namespace Postern.Core.Tests.Relay;

public sealed class AuthenticateStageTests
{
    private const string ContosoKey = "pk_contoso_key";
    private const string FabrikamKey = "pk_fabrikam_key";

    private static readonly Tenant Contoso = NewTenant("contoso", ContosoKey);
    private static readonly Tenant Fabrikam = NewTenant("fabrikam", FabrikamKey);
    private static readonly RoutingTable Table = new(1, [Contoso, Fabrikam],
        [new ProtectedDomain("contoso.test", Contoso.Id, []), new ProtectedDomain("fabrikam.test", Fabrikam.Id, [])]);

    private readonly AuthenticateStage _stage = new(new PosternOptions());

    [Fact]
    public void The_key_names_the_tenant_and_routes_its_recipients_to_its_mtas()
    {
        var result = Run($"X-Postern-Key: {ContosoKey}\r\nSubject: hi\r\n\r\n", "sender@external.test", "alice@CONTOSO.test", out var refusal);
        Assert.Null(refusal);
        Assert.Equal(Contoso.Id, result!.Tenant.Id);
        Assert.Equal([new EnvelopeRecipient("alice@contoso.test", RecipientRoute.Tenant)], result.Recipients);
    }

    [Fact]
    public void Another_tenants_key_is_not_valid_for_these_recipients()
    {
        Assert.Null(Run($"X-Postern-Key: {FabrikamKey}\r\n\r\n", "sender@external.test", "alice@contoso.test", out var refusal));
        Assert.Equal("550 5.7.1", $"{refusal!.Reply.Code} {refusal.Reply.EnhancedCode}");
        Assert.Equal("relay key not valid", refusal.Reason);
    }

    [Theory]
    [InlineData("Subject: no key\r\n\r\n", "relay key missing")]
    [InlineData($"X-Postern-Key: {ContosoKey}\r\nX-Postern-Key: {FabrikamKey}\r\n\r\n", "several relay keys")]
    public void Refuses_a_missing_or_conflicting_key(string headers, string reason)
    {
        Assert.Null(Run(headers, "sender@external.test", "alice@contoso.test", out var refusal));
        Assert.Equal(550, refusal!.Reply.Code);
        Assert.Equal(reason, refusal.Reason);
    }

    [Fact]
    public void Refuses_the_tenants_own_loop_token_and_too_many_hops_as_loops()
    {
        Assert.Null(Run($"X-Postern-Key: {ContosoKey}\r\nX-Postern-Loop: {Contoso.LoopToken}\r\n\r\n", "sender@external.test", "alice@contoso.test", out var loop));
        Assert.Equal("554 5.4.6", $"{loop!.Reply.Code} {loop.Reply.EnhancedCode}");
        Assert.Equal(Contoso.Id, loop.Tenant!.Id);

        var hops = string.Concat(Enumerable.Repeat("Received: hop\r\n", 31));
        Assert.Null(Run($"{hops}X-Postern-Key: {ContosoKey}\r\n\r\n", "sender@external.test", "alice@contoso.test", out var many));
        Assert.Equal("loop: 31 hops", many!.Reason);
    }

    [Fact]
    public void Refuses_outbound_recipients_for_a_sender_outside_the_tenant()
    {
        Assert.Null(Run($"X-Postern-Key: {ContosoKey}\r\n\r\n", "sender@external.test", "alice@contoso.test", out _, "bob@elsewhere.test"));
        var outbound = Run($"X-Postern-Key: {ContosoKey}\r\n\r\n", "ceo@contoso.test", "alice@contoso.test", out var refusal, "bob@elsewhere.test");
        Assert.Null(refusal);
        Assert.Equal(RecipientRoute.Mx, outbound!.Recipients[1].Route);
    }

    private AuthenticatedMessage? Run(string headers, string from, string to, out Refusal? refusal, params string[] more)
    {
        var transaction = new SmtpTransaction { From = Address(from) };
        foreach (var recipient in new[] { to }.Concat(more))
            transaction.Recipients.Add(Address(recipient));
        return _stage.Run(HeaderSection.Parse(Encoding.ASCII.GetBytes(headers), complete: true), transaction, Table, out refusal);
    }

    private static SmtpAddress Address(string address) => new(address[..address.IndexOf('@')], address[(address.IndexOf('@') + 1)..]);

    private static Tenant NewTenant(string name, string key) => new()
    {
        Id = Guid.NewGuid(),
        Name = name,
        Region = "eu",
        LoopToken = LoopToken.Generate(),
        RelayKeyHash = RelayKey.Hash(key),
        CreatedAt = DateTimeOffset.UtcNow,
    };
}
