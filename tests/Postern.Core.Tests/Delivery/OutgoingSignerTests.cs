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
        keys.Rotate(tenant, domain);
        var active = keys.Rotate(tenant, domain);

        var dns = new InMemoryDnsResolver();
        var signer = new OutgoingSigner(new PosternOptions(), DkimSigningKey.GenerateRsa(), dns, keys, NullLogger<OutgoingSigner>.Instance);
        var message = Message("alice@contoso.test");
        await signer.PrepareAsync(message, Envelope(tenant.Id), toMicrosoft365: false, default);

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
        keys.Rotate(contoso, tenants.AddDomain(contoso, "contoso.test", []));
        var signer = new OutgoingSigner(new PosternOptions(), DkimSigningKey.GenerateRsa(), new InMemoryDnsResolver(), keys, NullLogger<OutgoingSigner>.Instance);

        var unknown = Message("bob@fabrikam.test");
        await signer.PrepareAsync(unknown, Envelope(contoso.Id), toMicrosoft365: false, default);
        Assert.False(unknown.Headers.Contains(HeaderId.DkimSignature));

        var other = Message("alice@contoso.test");
        await signer.PrepareAsync(other, Envelope(Guid.NewGuid()), toMicrosoft365: false, default);
        Assert.False(other.Headers.Contains(HeaderId.DkimSignature));
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
        await signer.PrepareAsync(message, Envelope(Guid.NewGuid()), toMicrosoft365: true, default);

        Assert.Contains("cv=none", message.Headers[HeaderId.ArcSeal]);
        Assert.Contains("spf=pass", message.Headers[HeaderId.ArcAuthenticationResults]);
        var record = new DkimDnsRecord(options.Signing.ResolveArcDomain(options.ProductDomain), options.Signing.ArcSelector, arcKey.KeyType, arcKey.PublicKeyBase64);
        dns.AddTxt(record.Name, record.Value);
        var chain = await new ArcChainVerifier(dns).VerifyAsync(RoundTrip(message));
        Assert.Equal(ArcResult.Pass, chain.Result);
    }
}
