using System.Net;
using MimeKit;
using MimeKit.Cryptography;

namespace Postern.Core.Authentication;

/// <summary>What the SMTP conversation said about a message: who connected and what they claimed.</summary>
/// <param name="ClientAddress">
/// The IP address of the host that handed the message to the checked hop. In integrated mode the TCP peer
/// is Exchange Online, so for inbound mail pass the original client's address (from Microsoft 365's trusted
/// ARC set or Received header) when it is known; SPF against Exchange Online's own address says nothing.
/// </param>
/// <param name="Helo">The HELO/EHLO name.</param>
/// <param name="MailFrom">The MAIL FROM address; empty or null for the null reverse-path.</param>
public sealed record SmtpIdentity(IPAddress ClientAddress, string? Helo, string? MailFrom);

/// <summary>
/// Everything <see cref="AuthenticationChecker"/> found for one message, as data: the scanning stage turns it
/// into findings, and <see cref="ToAuthenticationResults"/> turns it into an RFC 8601 header or ARC-Authentication-Results.
/// </summary>
/// <param name="Spf">SPF for the MAIL FROM identity (for a null reverse-path, the HELO identity, as RFC 7208 §2.4 prescribes).</param>
/// <param name="HeloSpf">SPF for the HELO identity, when the HELO name was checkable.</param>
/// <param name="Dkim">One result per DKIM-Signature, in header order.</param>
/// <param name="Arc">The incoming ARC chain.</param>
/// <param name="Dmarc">DMARC for the From domain.</param>
public sealed record AuthenticationReport(
    SpfCheckResult Spf,
    SpfCheckResult? HeloSpf,
    IReadOnlyList<DkimSignatureResult> Dkim,
    ArcChainResult Arc,
    DmarcEvaluation Dmarc)
{
    /// <summary>The results as method results under <paramref name="authservId"/>, ready for a header or an ARC seal.</summary>
    public AuthenticationResults ToAuthenticationResults(string authservId) =>
        new AuthenticationResultsBuilder(authservId).Add(this).Build();
}

/// <summary>
/// Builds RFC 8601 Authentication-Results from Postern's results, as MimeKit's
/// <see cref="AuthenticationResults"/> (so the same object can be sealed by ARC) or as header text.
/// Properties follow RFC 8601 §2.7 (smtp.mailfrom, smtp.helo, header.d, header.s, header.i, header.from)
/// and RFC 6008 (header.b, to tell signatures from one domain apart).
/// </summary>
public sealed class AuthenticationResultsBuilder
{
    private readonly AuthenticationResults _results;

    public AuthenticationResultsBuilder(string authservId)
    {
        if (string.IsNullOrWhiteSpace(authservId))
            throw new ArgumentException("The authserv-id must not be empty.", nameof(authservId));
        _results = new AuthenticationResults(authservId);
    }

    /// <summary>All results of a report, in the order receivers expect: arc, spf, dkim, dmarc.</summary>
    public AuthenticationResultsBuilder Add(AuthenticationReport report)
    {
        Add(report.Arc);
        Add(report.Spf);
        if (report.HeloSpf is { } helo && report.Spf.Identity != SpfIdentity.Helo)
            Add(helo);
        AddDkim(report.Dkim);
        return Add(report.Dmarc);
    }

    public AuthenticationResultsBuilder Add(SpfCheckResult spf)
    {
        var result = new AuthenticationMethodResult("spf", spf.Keyword);
        if (spf.Result is SpfResult.TempError or SpfResult.PermError && spf.Problem is not null)
            result.Reason = spf.Problem;
        result.Properties.Add(spf.Identity == SpfIdentity.Helo
            ? new AuthenticationMethodProperty("smtp", "helo", spf.Domain)
            : new AuthenticationMethodProperty("smtp", "mailfrom", spf.Sender));
        _results.Results.Add(result);
        return this;
    }

    /// <summary>One dkim= per signature; "dkim=none" when there were none.</summary>
    public AuthenticationResultsBuilder AddDkim(IReadOnlyList<DkimSignatureResult> signatures)
    {
        if (signatures.Count == 0)
        {
            _results.Results.Add(new AuthenticationMethodResult("dkim", "none"));
            return this;
        }
        foreach (var dkim in signatures)
        {
            var result = new AuthenticationMethodResult("dkim", dkim.Keyword);
            if (dkim.Result != DkimResult.Pass && dkim.Reason is not null)
                result.Reason = dkim.Reason;
            else if (dkim.KeyBits is int bits)
                result.ResultComment = $"{bits}-bit key";
            if (dkim.Domain.Length > 0)
                result.Properties.Add(new AuthenticationMethodProperty("header", "d", dkim.Domain));
            if (dkim.Selector.Length > 0)
                result.Properties.Add(new AuthenticationMethodProperty("header", "s", dkim.Selector));
            if (dkim.Identity is { Length: > 0 } identity)
                result.Properties.Add(new AuthenticationMethodProperty("header", "i", identity));
            if (dkim.SignaturePrefix is { Length: > 0 } b)
                result.Properties.Add(new AuthenticationMethodProperty("header", "b", b));
            _results.Results.Add(result);
        }
        return this;
    }

    public AuthenticationResultsBuilder Add(ArcChainResult arc)
    {
        var result = new AuthenticationMethodResult("arc", arc.Keyword);
        if (arc.Result == ArcResult.Fail && arc.Reason is not null)
            result.Reason = arc.Reason;
        _results.Results.Add(result);
        return this;
    }

    public AuthenticationResultsBuilder Add(DmarcEvaluation dmarc)
    {
        var result = new AuthenticationMethodResult("dmarc", dmarc.Keyword);
        if (dmarc.Record is not null)
        {
            // The customary "(p=… dis=…)" comment: requested policy and the disposition applied.
            result.ResultComment = $"p={dmarc.RequestedPolicy.ToKeyword()} dis={dmarc.AppliedPolicy.ToKeyword()}";
        }
        if (dmarc.Result is DmarcResult.TempError or DmarcResult.PermError && dmarc.Reason is not null)
            result.Reason = dmarc.Reason;
        if (dmarc.FromDomain is not null)
            result.Properties.Add(new AuthenticationMethodProperty("header", "from", dmarc.FromDomain));
        _results.Results.Add(result);
        return this;
    }

    /// <summary>Any other method result (e.g. from an external engine).</summary>
    public AuthenticationResultsBuilder Add(AuthenticationMethodResult result)
    {
        _results.Results.Add(result);
        return this;
    }

    public AuthenticationResults Build() => _results;

    /// <summary>The header value, e.g. "postern.example; spf=pass smtp.mailfrom=a@b.example; dkim=none; …".</summary>
    public string ToHeaderValue() => _results.ToString();

    /// <summary>An Authentication-Results header for the top of the message (RFC 8601 §5: added above the fields it describes).</summary>
    public Header ToHeader() => new(HeaderId.AuthenticationResults, ToHeaderValue());

    /// <summary>
    /// Removes Authentication-Results headers that claim to come from <paramref name="authservId"/>: a message
    /// arriving from outside must not carry results that look like Postern's own (RFC 8601 §5).
    /// </summary>
    public static int RemoveForged(MimeMessage message, string authservId)
    {
        var forged = message.Headers
            .Where(h => h.Id == HeaderId.AuthenticationResults && AuthenticationResults.TryParse(h.RawValue, out var parsed)
                && string.Equals(parsed.AuthenticationServiceIdentifier, authservId, StringComparison.OrdinalIgnoreCase))
            .ToArray();
        foreach (var header in forged)
            message.Headers.Remove(header);
        return forged.Length;
    }
}
