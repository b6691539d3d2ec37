using System.Net;
using MimeKit;
using Postern.Core.Authentication;

namespace Postern.Core.Tests.Authentication;

/// <summary>
/// A small world for end-to-end checks: fabrikam.test sends to a Postern tenant, DKIM-signing with its own key
/// and publishing SPF and DMARC; Postern seals with arc.postern.example. Keys are made once per test run.
/// </summary>
internal sealed class AuthenticationScenario
{
    public const string AuthservId = "postern.example";
    public const string ArcDomain = "arc.postern.example";
    public const string ArcSelector = "arc1";
    public static readonly IPAddress SenderIp = IPAddress.Parse("192.0.2.10");

    private static readonly Lazy<AuthenticationScenario> Shared = new(() => new AuthenticationScenario());

    private AuthenticationScenario()
    {
        SenderKey = DkimSigningKey.FromPem(File.ReadAllText(DkimConformanceTests.DkimpyData("2048_testkey.key")));
        ArcKey = DkimSigningKey.FromPem(File.ReadAllText(DkimConformanceTests.DkimpyData("2048_testkey_PKCS8.key")));
        Records = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
        {
            ["fabrikam.test"] = "v=spf1 ip4:192.0.2.0/24 -all",
            ["_dmarc.fabrikam.test"] = "v=DMARC1; p=reject; rua=mailto:dmarc@fabrikam.test",
            ["s2048._domainkey.fabrikam.test"] = SenderKey.DnsRecord("fabrikam.test", "s2048").Value,
            [$"{ArcSelector}._domainkey.{ArcDomain}"] = ArcKey.DnsRecord(ArcDomain, ArcSelector).Value,
        };
    }

    public static AuthenticationScenario Instance => Shared.Value;

    public DkimSigningKey SenderKey { get; }

    public DkimSigningKey ArcKey { get; }

    public IReadOnlyDictionary<string, string> Records { get; }

    public InMemoryDnsResolver Dns()
    {
        var dns = new InMemoryDnsResolver();
        foreach (var (name, value) in Records)
            dns.AddTxt(name, value);
        return dns;
    }

    public static SmtpIdentity FromSender => new(SenderIp, "mail.fabrikam.test", "alice@fabrikam.test");

    /// <summary>A message as fabrikam.test's server sends it: DKIM-signed, then re-read from the wire form.</summary>
    public MimeMessage SignedBySender(string subject = "Quarterly report")
    {
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Alice", "alice@fabrikam.test"));
        message.To.Add(new MailboxAddress("Bob", "bob@contoso.test"));
        message.Subject = subject;
        message.Date = new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero);
        message.MessageId = "report-1@fabrikam.test";
        message.Body = new TextPart("plain") { Text = "Hello Bob,\n\nThe numbers are attached in spirit.\n\n-- \nAlice\n" };
        message.Prepare(EncodingConstraint.SevenBit);
        new DkimMessageSigner(SenderKey, "fabrikam.test", "s2048").Sign(message);
        return Reload(message);
    }

    public ArcSealer Sealer() => new(ArcKey, ArcDomain, ArcSelector, AuthservId, new ArcChainVerifier(Dns()));

    public static byte[] Wire(MimeMessage message)
    {
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        using var stream = new MemoryStream();
        message.WriteTo(options, stream);
        return stream.ToArray();
    }

    public static MimeMessage Reload(MimeMessage message)
    {
        using var stream = new MemoryStream(Wire(message));
        return MimeMessage.Load(stream);
    }
}
