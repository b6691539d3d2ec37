using MimeKit;

namespace Postern.Core.Authentication;

/// <summary>Settings for <see cref="AuthenticationChecker"/>.</summary>
public sealed class AuthenticationCheckerOptions
{
    public SpfOptions Spf { get; set; } = new();

    /// <summary>The clock for DKIM signature expiry (SPF's %{t} uses <see cref="SpfOptions.TimeProvider"/>).</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>The Public Suffix List for DMARC; the embedded copy when null.</summary>
    public PublicSuffixList? PublicSuffixList { get; set; }

    /// <summary>pct= sampling source (0–99); random when null.</summary>
    public Func<int>? DmarcPercentSample { get; set; }
}

/// <summary>
/// Runs every mail-authentication check Postern makes on a message — SPF for MAIL FROM and HELO, DKIM, ARC
/// and DMARC — and returns the results as data. SPF (DNS only) runs alongside; DKIM, ARC and DMARC read the parsed
/// message one after another, because a <see cref="MimeMessage"/> is not safe for concurrent readers (MimeKit loads
/// fields lazily and a part's content stream has one position). DMARC uses the others' results.
/// Nothing here throws for a message's content or a DNS failure: those are results.
/// </summary>
public sealed class AuthenticationChecker
{
    private readonly SpfChecker _spf;
    private readonly DkimChecker _dkim;
    private readonly ArcChainVerifier _arc;
    private readonly DmarcEvaluator _dmarc;

    public AuthenticationChecker(IDnsResolver dns, AuthenticationCheckerOptions? options = null)
    {
        options ??= new AuthenticationCheckerOptions();
        var keys = new DnsDkimKeyLocator(dns);
        _spf = new SpfChecker(dns, options.Spf);
        _dkim = new DkimChecker(keys, options.TimeProvider);
        _arc = new ArcChainVerifier(keys);
        _dmarc = new DmarcEvaluator(dns, options.PublicSuffixList, options.DmarcPercentSample);
    }

    public Task<AuthenticationReport> CheckAsync(MimeMessage message, SmtpIdentity smtp, CancellationToken cancellationToken = default) =>
        CheckAsync(message, null, smtp, cancellationToken);

    /// <summary>Checks <paramref name="message"/>, hashing the body from <paramref name="openBody"/> (its bytes as received) when given.</summary>
    public async Task<AuthenticationReport> CheckAsync(MimeMessage message, Func<Stream>? openBody, SmtpIdentity smtp, CancellationToken cancellationToken = default)
    {
        var spf = _spf.CheckMailFromAsync(smtp.ClientAddress, smtp.MailFrom, smtp.Helo, cancellationToken);
        var heloSpf = string.IsNullOrEmpty(smtp.MailFrom) || string.IsNullOrEmpty(smtp.Helo)
            ? Task.FromResult<SpfCheckResult?>(null)
            : CheckHeloAsync(smtp, cancellationToken);
        // One set of body hashes for both: a DKIM signature and an ARC-Message-Signature over the same body hash it once.
        var hashes = new DkimMessageHashes(message, openBody);
        var dkim = await _dkim.VerifyAsync(hashes, cancellationToken).ConfigureAwait(false);
        var arc = await _arc.VerifyAsync(hashes, cancellationToken).ConfigureAwait(false);
        var mailFrom = await spf.ConfigureAwait(false);
        var dmarc = await _dmarc.EvaluateAsync(message, mailFrom, dkim, cancellationToken).ConfigureAwait(false);
        return new AuthenticationReport(mailFrom, await heloSpf.ConfigureAwait(false), dkim, arc, dmarc);
    }

    private async Task<SpfCheckResult?> CheckHeloAsync(SmtpIdentity smtp, CancellationToken cancellationToken) =>
        await _spf.CheckHeloAsync(smtp.ClientAddress, smtp.Helo!, cancellationToken).ConfigureAwait(false);
}
