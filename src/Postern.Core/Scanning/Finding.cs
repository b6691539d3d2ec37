namespace Postern.Core.Scanning;

/// <summary>
/// One thing an engine noticed about a message, with the reason a mail administrator will read in
/// the trace. Findings carry no decision: the tenant's policy turns them into a verdict.
/// </summary>
/// <param name="Engine">Engine that produced it ("clamav", "rspamd", "attachments", "urls", "impersonation", …).</param>
/// <param name="Kind">What it is; one of <see cref="FindingKinds"/>.</param>
/// <param name="Reason">Human-readable, one line: what was found and where (no secrets, no body text beyond names).</param>
/// <param name="Score">Spam-like score where the engine has one (rspamd), else 0.</param>
/// <param name="Subject">What it is about: attachment file name, URL, signature name, symbol…</param>
/// <param name="FileType">
/// With <see cref="FindingKinds.AttachmentType"/>: the true type id (<see cref="Engines.FileType.Id"/>, e.g. "pe",
/// "script-js") of the attachment or of something inside it, so policy can match on it without parsing the reason.
/// </param>
public sealed record Finding(string Engine, string Kind, string Reason, double Score = 0, string? Subject = null, string? FileType = null);

/// <summary>The kinds of finding policy rules can test.</summary>
public static class FindingKinds
{
    public const string Virus = "virus";
    public const string Spam = "spam";
    public const string SpamScore = "spam-score";
    public const string Executable = "attachment-executable";
    public const string Script = "attachment-script";
    public const string MacroDocument = "attachment-macro";
    public const string EncryptedArchive = "attachment-encrypted-archive";
    public const string NestedArchive = "attachment-nested-archive";

    /// <summary>What an attachment, or a file inside an archive attachment, really is: given for every one looked at,
    /// harmless or not, with the type id in <see cref="Finding.FileType"/>.</summary>
    public const string AttachmentType = "attachment-type";

    /// <summary>A password-protected Office document (OLE2 EncryptedPackage): like an encrypted archive, nothing in it can be inspected.</summary>
    public const string EncryptedDocument = "attachment-encrypted-document";

    /// <summary>An attachment Postern could not look into: archive limits reached (possible zip bomb), unreadable or
    /// unsupported container (ISO, CAB, VHD), or too large to decode.</summary>
    public const string UninspectableAttachment = "attachment-uninspectable";
    public const string Url = "url";
    public const string DisplayNameImpersonation = "impersonation-display-name";
    public const string LookAlikeDomain = "impersonation-lookalike-domain";

    /// <summary>SPF failed or soft-failed for the MAIL FROM (or HELO) identity; <see cref="Finding.Subject"/> says which ("spf=softfail").</summary>
    public const string Spf = "authentication-spf";

    /// <summary>A DKIM signature did not verify ("dkim=fail"); one finding per failing signature.</summary>
    public const string Dkim = "authentication-dkim";

    /// <summary>The From domain's DMARC check failed ("dmarc=fail"); the reason names the policy the domain asks for.</summary>
    public const string Dmarc = "authentication-dmarc";

    /// <summary>The incoming ARC chain is broken ("arc=fail").</summary>
    public const string Arc = "authentication-arc";

    /// <summary>
    /// Not given to any finding: a rule naming it matches any of <see cref="Spf"/>, <see cref="Dkim"/>,
    /// <see cref="Dmarc"/> and <see cref="Arc"/>, as it matched every authentication failure before they had kinds of their own.
    /// </summary>
    public const string Authentication = "authentication";

    /// <summary>An engine could not scan (down, timed out, size limit): policy decides, by default defer.</summary>
    public const string EngineUnavailable = "engine-unavailable";
}
