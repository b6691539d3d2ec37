using Microsoft.Extensions.Logging.Abstractions;
using MimeKit;
using Postern.Core.Authentication;
using Postern.Core.Configuration;
using Postern.Core.Delivery;
using Postern.Core.Spool;
using Postern.Core.Storage;
using Postern.Core.Tenants;

namespace Postern.Core.Tests.Delivery;

public sealed class OutgoingSignerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("postern-signer-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static MimeMessage Message(string from)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(from));
        message.To.Add(MailboxAddress.Parse("someone@fabrikam.test"));
        message.Subject = "Quarterly numbers";
        message.Date = DateTimeOffset.UtcNow;
        message.MessageId = "abc@contoso.test";
        message.Body = new TextPart("plain") { Text = "Numbers attached.\r\n" };
        return message;
    }

    private static Envelope Envelope(Guid tenant) => new()
    {
        QueueId = QueueId.New(),
        ReceivedAt = DateTimeOffset.UtcNow,
        TenantId = tenant,
        MailFrom = "alice@contoso.test",
        Recipients = [new EnvelopeRecipient("someone@fabrikam.test", RecipientRoute.Mx)],
        Client = "127.0.0.1",
    };

    /// <summary>Runs the signer on the bytes MimeKit writes for <paramref name="message"/> (as delivery does on the stored bytes) and puts what it added on top of <paramref name="message"/>.</summary>
    private static async Task PrepareAsync(OutgoingSigner signer, MimeMessage message, Envelope envelope, bool toMicrosoft365, CancellationToken cancellationToken)
    {
        var raw = MimeMessageBytes.ToRaw(message);
        var before = raw.Fields.Count;
        await signer.PrepareAsync(raw, envelope, toMicrosoft365, cancellationToken);
        for (var i = raw.Fields.Count - before - 1; i >= 0; i--)
            message.Headers.Insert(0, MimeMessageBytes.ToHeader(raw.Fields[i]));
    }

    private static MimeMessage RoundTrip(MimeMessage message)
    {
        using var stream = new MemoryStream();
        message.WriteTo(stream);
        stream.Position = 0;
        return MimeMessage.Load(stream);
    }

    [Fact]
    public async Task Outbound_mail_is_dkim_signed_with_the_tenants_active_key_and_verifies_against_its_published_record()
    {
        var database = new PosternDatabase(_dir);
        var tenants = new TenantStore(database);
        var tenant = tenants.AddTenant("contoso", Guid.NewGuid(), "eu", false);
        var domain = tenants.AddDomain(tenant, "contoso.test", []);
        var keys = new SigningKeyStore(database);
        keys.AddPending(tenant, domain);
        keys.Switch(tenant, domain);
        var active = keys.AddPending(tenant, domain);
        keys.Switch(tenant, domain);

        var dns = new InMemoryDnsResolver();
        var signer = new OutgoingSigner(new PosternOptions(), DkimSigningKey.GenerateRsa(), dns, keys, NullLogger<OutgoingSigner>.Instance);
        var message = Message("alice@contoso.test");
        await PrepareAsync(signer, message, Envelope(tenant.Id), toMicrosoft365: false, default);

        var signature = message.Headers[HeaderId.DkimSignature];
        Assert.Contains($"s={active.Selector}", signature);
        Assert.Contains("d=contoso.test", signature);
        dns.AddTxt(active.DnsRecord.Name, active.DnsRecord.Value);
        var results = await new DkimChecker(new DnsDkimKeyLocator(dns)).VerifyAsync(RoundTrip(message));
        Assert.Equal("pass", Assert.Single(results).Keyword);
    }

    [Fact]
    public async Task Mail_from_a_domain_without_a_key_or_of_another_tenant_is_not_signed()
    {
        var database = new PosternDatabase(_dir);
        var tenants = new TenantStore(database);
        var contoso = tenants.AddTenant("contoso", Guid.NewGuid(), "eu", false);
        var keys = new SigningKeyStore(database);
        var domain = tenants.AddDomain(contoso, "contoso.test", []);
        keys.AddPending(contoso, domain);
        keys.Switch(contoso, domain);
        var signer = new OutgoingSigner(new PosternOptions(), DkimSigningKey.GenerateRsa(), new InMemoryDnsResolver(), keys, NullLogger<OutgoingSigner>.Instance);

        var unknown = Message("bob@fabrikam.test");
        await PrepareAsync(signer, unknown, Envelope(contoso.Id), toMicrosoft365: false, default);
        Assert.False(unknown.Headers.Contains(HeaderId.DkimSignature));

        var other = Message("alice@contoso.test");
        await PrepareAsync(signer, other, Envelope(Guid.NewGuid()), toMicrosoft365: false, default);
        Assert.False(other.Headers.Contains(HeaderId.DkimSignature));
    }

    [Fact]
    public async Task A_pending_key_does_not_sign_until_the_switch_and_the_previous_key_signs_meanwhile()
    {
        var database = new PosternDatabase(_dir);
        var tenants = new TenantStore(database);
        var tenant = tenants.AddTenant("contoso", Guid.NewGuid(), "eu", false);
        var domain = tenants.AddDomain(tenant, "contoso.test", []);
        var keys = new SigningKeyStore(database);
        var signer = new OutgoingSigner(new PosternOptions(), DkimSigningKey.GenerateRsa(), new InMemoryDnsResolver(), keys, NullLogger<OutgoingSigner>.Instance);

        // The first key waits for the switch too: nothing signs until its record is said to be published.
        var first = keys.AddPending(tenant, domain);
        signer.ReloadKeys();
        var unsigned = Message("alice@contoso.test");
        await PrepareAsync(signer, unsigned, Envelope(tenant.Id), toMicrosoft365: false, default);
        Assert.False(unsigned.Headers.Contains(HeaderId.DkimSignature));
        Assert.Equal((first.Selector, (string?)null), keys.Switch(tenant, domain));

        var second = keys.AddPending(tenant, domain);
        signer.ReloadKeys();
        Assert.Equal(DkimKeyState.Pending, Assert.Single(keys.List(tenant.Id), k => k.Selector == second.Selector).State);
        var meanwhile = Message("alice@contoso.test");
        await PrepareAsync(signer, meanwhile, Envelope(tenant.Id), toMicrosoft365: false, default);
        Assert.Contains($"s={first.Selector};", (meanwhile.Headers[HeaderId.DkimSignature] ?? "").Replace(" ", ""));

        Assert.Equal((second.Selector, first.Selector), keys.Switch(tenant, domain));
        signer.ReloadKeys();
        var after = Message("alice@contoso.test");
        await PrepareAsync(signer, after, Envelope(tenant.Id), toMicrosoft365: false, default);
        Assert.Contains($"s={second.Selector};", (after.Headers[HeaderId.DkimSignature] ?? "").Replace(" ", ""));
        Assert.Equal([(first.Selector, DkimKeyState.Retired), (second.Selector, DkimKeyState.Active)],
            keys.List(tenant.Id).OrderBy(k => k.CreatedAt).Select(k => (k.Selector, k.State)));

        var nothingPending = Assert.Throws<PosternException>(() => keys.Switch(tenant, domain));
        Assert.Contains("'contoso.test' has no pending DKIM key", nothingPending.Message);
    }

    [Fact]
    public void A_second_rotation_is_refused_while_a_key_is_pending()
    {
        var database = new PosternDatabase(_dir);
        var tenants = new TenantStore(database);
        var tenant = tenants.AddTenant("contoso", Guid.NewGuid(), "eu", false);
        var domain = tenants.AddDomain(tenant, "contoso.test", []);
        var keys = new SigningKeyStore(database);
        var pending = keys.AddPending(tenant, domain);

        var refused = Assert.Throws<PosternException>(() => keys.AddPending(tenant, domain));
        Assert.Contains($"already has a pending DKIM key (selector {pending.Selector})", refused.Message);
        Assert.Single(keys.List(tenant.Id));
    }

    [Fact]
    public async Task Mail_returned_to_microsoft_365_is_arc_sealed_with_the_deployment_key_and_the_chain_verifies()
    {
        var arcKey = DkimSigningKey.GenerateRsa();
        var options = new PosternOptions();
        var dns = new InMemoryDnsResolver();
        var signer = new OutgoingSigner(options, arcKey, dns, new SigningKeyStore(new PosternDatabase(_dir)), NullLogger<OutgoingSigner>.Instance);
        var message = Message("alice@fabrikam.test");
        message.Headers.Insert(0, new Header("Authentication-Results", $"{signer.AuthservId}; dkim=none; spf=pass smtp.mailfrom=fabrikam.test"));
        await PrepareAsync(signer, message, Envelope(Guid.NewGuid()), toMicrosoft365: true, default);

        Assert.Contains("cv=none", message.Headers[HeaderId.ArcSeal]);
        Assert.Contains("spf=pass", message.Headers[HeaderId.ArcAuthenticationResults]);
        var record = new DkimDnsRecord(options.Signing.ResolveArcDomain(options.ProductDomain), options.Signing.ArcSelector, arcKey.KeyType, arcKey.PublicKeyBase64);
        dns.AddTxt(record.Name, record.Value);
        var chain = await new ArcChainVerifier(dns).VerifyAsync(RoundTrip(message));
        Assert.Equal(ArcResult.Pass, chain.Result);
    }
}
