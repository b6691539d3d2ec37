using System.Security.Cryptography;
using System.Text;
using MimeKit;
using MimeKit.Cryptography;

namespace Postern.ExoEmulator.MailFlow;

/// <summary>
/// The ARC set Exchange Online adds to mail it sends on through a connector (d=microsoft.com,
/// s=arcselector10001, as real messages from Microsoft 365 carry). Written with MimeKit's ARC signer, independent
/// of Postern's own; its public key is <see cref="DnsRecord"/>, for a test's DNS at
/// arcselector10001._domainkey.microsoft.com.
/// </summary>
public sealed class ExoArcSealer
{
    public const string Domain = "microsoft.com";
    public const string Selector = "arcselector10001";
    private const string AuthServId = "mx.microsoft.com";

    private static readonly HeaderId[] Signed =
        [HeaderId.From, HeaderId.To, HeaderId.Cc, HeaderId.Subject, HeaderId.Date, HeaderId.MessageId, HeaderId.MimeVersion, HeaderId.ContentType];

    private readonly Sealer _sealer;

    public ExoArcSealer()
    {
        using var key = RSA.Create(2048);
        DnsRecord = "v=DKIM1; k=rsa; p=" + Convert.ToBase64String(key.ExportSubjectPublicKeyInfo());
        using var pem = new MemoryStream(Encoding.ASCII.GetBytes(key.ExportRSAPrivateKeyPem()));
        _sealer = new Sealer(pem)
        {
            HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
            BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
        };
    }

    /// <summary>The TXT record text of the sealing key.</summary>
    public string DnsRecord { get; }

    public string DnsName => $"{Selector}._domainkey.{Domain}";

    /// <summary>Seals <paramref name="mail"/>: the three ARC fields of the next instance go on top, nothing else changes.</summary>
    public void Seal(RawMail mail, string mailFrom)
    {
        var message = MimeMessage.Load(new MemoryStream(mail.ToBytes()));
        if (message.Headers[HeaderId.From] is null)
            return; // Exchange Online does not seal what it cannot sign (no From).
        lock (_sealer)
        {
            _sealer.MailFrom = mailFrom;
            _sealer.Sign(FormatOptions.Default, message, Signed.Where(h => message.Headers.Contains(h)).ToArray());
        }
        var added = message.Headers.TakeWhile(h => h.Field.StartsWith("ARC-", StringComparison.OrdinalIgnoreCase)).ToArray();
        for (var i = added.Length - 1; i >= 0; i--)
        {
            var raw = Encoding.ASCII.GetString(added[i].RawValue).TrimEnd('\r', '\n').ReplaceLineEndings("\r\n");
            mail.Headers.Insert(0, new HeaderField(added[i].Field, raw));
        }
    }

    private sealed class Sealer(Stream key) : ArcSigner(key, ExoArcSealer.Domain, ExoArcSealer.Selector)
    {
        public string MailFrom { get; set; } = "";

        protected override AuthenticationResults GenerateArcAuthenticationResults(FormatOptions options, MimeMessage message, CancellationToken cancellationToken)
        {
            // The emulator does not judge SPF, DKIM or DMARC; it says so instead of claiming a pass.
            var results = new AuthenticationResults(AuthServId);
            var domain = MailFrom[(MailFrom.LastIndexOf('@') + 1)..];
            results.Results.Add(new AuthenticationMethodResult("spf", "none")
            {
                ResultComment = "not evaluated by the emulator",
                Properties = { new AuthenticationMethodProperty("smtp", "mailfrom", domain.Length > 0 ? domain : "none") },
            });
            results.Results.Add(new AuthenticationMethodResult("dkim", "none"));
            results.Results.Add(new AuthenticationMethodResult("dmarc", "none"));
            return results;
        }

        protected override Task<AuthenticationResults> GenerateArcAuthenticationResultsAsync(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) =>
            Task.FromResult(GenerateArcAuthenticationResults(options, message, cancellationToken));
    }
}
