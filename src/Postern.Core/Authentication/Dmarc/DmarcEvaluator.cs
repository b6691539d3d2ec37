using MimeKit;

namespace Postern.Core.Authentication;

/// <summary>
/// DMARC (RFC 7489): finds the policy record for the From domain (then its Organizational Domain, found
/// with the Public Suffix List), checks SPF and DKIM identifier alignment, and says which policy to apply,
/// pct= sampling included.
/// </summary>
public sealed class DmarcEvaluator
{
    private readonly IDnsResolver _dns;
    private readonly PublicSuffixList _suffixes;
    private readonly Func<int> _sample;

    /// <param name="dns">Where records come from.</param>
    /// <param name="suffixes">The Public Suffix List; the embedded one by default.</param>
    /// <param name="percentSample">A number from 0 to 99 for pct= sampling; random by default, fixed in tests.</param>
    public DmarcEvaluator(IDnsResolver dns, PublicSuffixList? suffixes = null, Func<int>? percentSample = null)
    {
        _dns = dns;
        _suffixes = suffixes ?? PublicSuffixList.Default;
        _sample = percentSample ?? (() => Random.Shared.Next(100));
    }

    /// <summary>The one domain of the From header; null with a reason when there is none, several, or it cannot be read (§6.6.1).</summary>
    public static string? FromDomain(MimeMessage message, out string? problem)
    {
        problem = null;
        var fromHeaders = message.Headers.Count(h => h.Id == HeaderId.From);
        if (fromHeaders != 1)
        {
            problem = fromHeaders == 0 ? "the message has no From header" : $"the message has {fromHeaders} From headers";
            return null;
        }
        var domains = message.From.Mailboxes.Select(m => m.Domain?.TrimEnd('.').ToLowerInvariant()).Distinct().ToArray();
        if (domains.Length != 1 || string.IsNullOrEmpty(domains[0]))
        {
            problem = domains.Length > 1 ? "the From header names mailboxes in more than one domain" : "the From header has no usable address";
            return null;
        }
        return domains[0];
    }

    /// <summary>Evaluates DMARC for the From domain of <paramref name="message"/>.</summary>
    public Task<DmarcEvaluation> EvaluateAsync(MimeMessage message, SpfCheckResult? spf, IReadOnlyList<DkimSignatureResult> dkim, CancellationToken cancellationToken = default)
    {
        var from = FromDomain(message, out var problem);
        return from is null
            ? Task.FromResult(new DmarcEvaluation(DmarcResult.PermError, null, Reason: problem))
            : EvaluateAsync(from, spf, dkim, cancellationToken);
    }

    /// <summary>
    /// Evaluates DMARC for <paramref name="fromDomain"/>. <paramref name="spf"/> is the MAIL FROM result (for a
    /// null reverse-path, the HELO result, which is what SPF checks then); its <see cref="SpfCheckResult.Domain"/> is
    /// the identifier aligned with From.
    /// </summary>
    public async Task<DmarcEvaluation> EvaluateAsync(string fromDomain, SpfCheckResult? spf, IReadOnlyList<DkimSignatureResult> dkim, CancellationToken cancellationToken = default)
    {
        fromDomain = fromDomain.TrimEnd('.').ToLowerInvariant();
        var organizational = _suffixes.GetRegistrableDomain(fromDomain);
        if (organizational is null)
            return new DmarcEvaluation(DmarcResult.None, fromDomain, Reason: $"'{fromDomain}' is a public suffix or not a valid domain");

        var lookup = await FindRecordAsync(fromDomain, cancellationToken).ConfigureAwait(false);
        var recordDomain = fromDomain;
        if (lookup.Status == LookupStatus.NotFound && organizational != fromDomain)
        {
            lookup = await FindRecordAsync(organizational, cancellationToken).ConfigureAwait(false);
            recordDomain = organizational;
        }
        switch (lookup.Status)
        {
            case LookupStatus.TemporaryFailure:
                return new DmarcEvaluation(DmarcResult.TempError, fromDomain, organizational, recordDomain, Reason: lookup.Problem);
            case LookupStatus.NotFound:
                return new DmarcEvaluation(DmarcResult.None, fromDomain, organizational, Reason: $"no DMARC record at _dmarc.{fromDomain} or _dmarc.{organizational}");
            case LookupStatus.Multiple:
                // §6.6.3 step 5: more than one record ends policy discovery; DMARC is not applied.
                return new DmarcEvaluation(DmarcResult.None, fromDomain, organizational, recordDomain, Reason: lookup.Problem);
            case LookupStatus.Invalid:
                return new DmarcEvaluation(DmarcResult.PermError, fromDomain, organizational, recordDomain, Reason: lookup.Problem);
        }

        var record = lookup.Record!;
        var requested = recordDomain != fromDomain ? record.SubdomainPolicy ?? record.Policy : record.Policy;

        var spfAligned = spf is { Result: SpfResult.Pass } && Aligned(spf.Domain, fromDomain, organizational, record.SpfAlignment);
        var alignedDkim = dkim.FirstOrDefault(d => d.Result == DkimResult.Pass && Aligned(d.Domain, fromDomain, organizational, record.DkimAlignment));
        if (spfAligned || alignedDkim is not null)
        {
            var how = alignedDkim is not null ? $"DKIM d={alignedDkim.Domain}" : $"SPF {spf!.Domain}";
            return new DmarcEvaluation(DmarcResult.Pass, fromDomain, organizational, recordDomain, record, requested, DmarcPolicy.None, false,
                spfAligned, alignedDkim is not null, alignedDkim?.Domain, $"{how} passed aligned with {fromDomain}");
        }

        var applied = requested;
        var sampledOut = false;
        if (record.Percent < 100 && _sample() >= record.Percent)
        {
            // §6.6.4: mail outside the sample gets the next milder policy.
            sampledOut = true;
            applied = requested == DmarcPolicy.Reject ? DmarcPolicy.Quarantine : DmarcPolicy.None;
        }
        return new DmarcEvaluation(DmarcResult.Fail, fromDomain, organizational, recordDomain, record, requested, applied, sampledOut, false, false, null,
            Describe(fromDomain, spf, dkim));
    }

    private bool Aligned(string identifier, string fromDomain, string fromOrganizational, DmarcAlignment mode)
    {
        identifier = identifier.TrimEnd('.').ToLowerInvariant();
        if (identifier.Length == 0)
            return false;
        return mode == DmarcAlignment.Strict
            ? identifier == fromDomain
            : _suffixes.GetRegistrableDomain(identifier) == fromOrganizational;
    }

    private static string Describe(string fromDomain, SpfCheckResult? spf, IReadOnlyList<DkimSignatureResult> dkim)
    {
        var spfPart = spf is null ? "SPF was not checked" : $"SPF {spf.Keyword} for {spf.Domain}";
        var dkimPart = dkim.Count == 0
            ? "no DKIM signature"
            : "DKIM " + string.Join(", ", dkim.Select(d => $"{d.Keyword} for d={d.Domain}"));
        return $"nothing aligned with {fromDomain} passed: {spfPart}; {dkimPart}";
    }

    private async Task<RecordLookup> FindRecordAsync(string domain, CancellationToken cancellationToken)
    {
        var name = "_dmarc." + domain;
        var answer = await _dns.QueryTxtAsync(name, cancellationToken).ConfigureAwait(false);
        if (answer.IsTemporaryFailure)
            return new RecordLookup(LookupStatus.TemporaryFailure, null, $"DNS lookup of {name} failed: {answer.Error ?? answer.Status.ToString()}");
        var candidates = answer.Records.Where(DmarcRecord.IsDmarcRecord).ToArray();
        if (candidates.Length == 0)
            return new RecordLookup(LookupStatus.NotFound, null, null);
        if (candidates.Length > 1)
            return new RecordLookup(LookupStatus.Multiple, null, $"{name} publishes {candidates.Length} DMARC records; DMARC is not applied");
        var record = DmarcRecord.TryParse(candidates[0], out var problem);
        return record is null
            ? new RecordLookup(LookupStatus.Invalid, null, $"{name}: {problem}")
            : new RecordLookup(LookupStatus.Found, record, null);
    }

    private enum LookupStatus
    {
        Found,
        NotFound,
        Multiple,
        Invalid,
        TemporaryFailure,
    }

    private sealed record RecordLookup(LookupStatus Status, DmarcRecord? Record, string? Problem);
}
