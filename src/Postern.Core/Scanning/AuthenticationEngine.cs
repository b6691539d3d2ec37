using System.Net;
using System.Text.RegularExpressions;
using MimeKit;
using Postern.Core.Authentication;

namespace Postern.Core.Scanning;

/// <summary>
/// Postern's own SPF, DKIM, ARC and DMARC checks as a scanning engine: the results go on the message
/// as Authentication-Results (which the ARC seal carries back to Microsoft 365) and failures become
/// findings policy can act on, each method with its own kind (<see cref="FindingKinds.Spf"/>,
/// <see cref="FindingKinds.Dkim"/>, <see cref="FindingKinds.Dmarc"/>, <see cref="FindingKinds.Arc"/>) so a rule can
/// tell a DMARC failure from an SPF softfail.
/// </summary>
/// <remarks>
/// In integrated mode the connecting client is Exchange Online, so SPF is judged for the address
/// that handed the message to Exchange Online: the sender in the newest Received line added by a
/// *.mail.protection.outlook.com front end (older lines were written by whoever sent the message, and a forged
/// one must not choose the address SPF is judged for). Without one (not from Microsoft 365), the SMTP client's address.
/// </remarks>
public sealed partial class AuthenticationEngine(AuthenticationChecker checker, string authservId) : IScanEngine
{
    public string Name => "authentication";

    public async ValueTask<IReadOnlyList<Finding>> ScanAsync(ScanContext context, CancellationToken cancellationToken)
    {
        var envelope = context.Envelope;
        var client = OriginalClient(context.Message) ?? (IPAddress.TryParse(envelope.Client, out var ip) ? ip : IPAddress.Loopback);
        var report = await checker.CheckAsync(context.Message, context.OpenBody, new SmtpIdentity(client, envelope.HeloName, envelope.MailFrom), cancellationToken)
            .ConfigureAwait(false);
        context.Annotate("Authentication-Results", report.ToAuthenticationResults(authservId).ToString());

        var findings = new List<Finding>();
        if (report.Dmarc.Result == DmarcResult.Fail)
            findings.Add(new Finding(Name, FindingKinds.Dmarc,
                $"DMARC fail for {report.Dmarc.FromDomain} (policy {report.Dmarc.AppliedPolicy.ToKeyword()}): {report.Dmarc.Reason}", Subject: "dmarc=fail"));
        if (report.Arc.Result == ArcResult.Fail)
            findings.Add(new Finding(Name, FindingKinds.Arc, $"ARC chain fails: {report.Arc.Reason}", Subject: "arc=fail"));
        foreach (var dkim in report.Dkim.Where(d => d.Keyword == "fail"))
            findings.Add(new Finding(Name, FindingKinds.Dkim, $"DKIM signature of {dkim.Domain} fails: {dkim.Reason}", Subject: "dkim=fail"));
        // A softfail is the domain owner saying "probably not us": worth a rule (e.g. tag), so it is a finding too.
        if (report.Spf.Result is SpfResult.Fail or SpfResult.SoftFail)
            findings.Add(new Finding(Name, FindingKinds.Spf, $"SPF {report.Spf.Keyword} for {report.Spf.Domain} from {client}", Subject: $"spf={report.Spf.Keyword}"));
        return findings;
    }

    /// <summary>The sender address recorded by Exchange Online's Internet-facing front end, if the message came that way.</summary>
    /// <remarks>Received lines are prepended, so the first front-end line is the one Exchange Online wrote on receipt.</remarks>
    public static IPAddress? OriginalClient(MimeMessage message)
    {
        foreach (var header in message.Headers.Where(h => h.Id == HeaderId.Received))
        {
            var match = FrontEndReceived().Match(header.Value);
            if (match.Success && IPAddress.TryParse(match.Groups["ip"].Value, out var address))
                return address;
        }
        return null;
    }

    [GeneratedRegex(@"^\s*from\s+\S+\s+\((?:[^()]*\s)?\[?(?<ip>[0-9a-fA-F:.]+)\]?\)\s+by\s+\S+\.mail\.protection\.outlook\.com\b", RegexOptions.IgnoreCase)]
    private static partial Regex FrontEndReceived();
}
