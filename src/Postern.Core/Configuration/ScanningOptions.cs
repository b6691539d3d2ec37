namespace Postern.Core.Configuration;

/// <summary>
/// Settings of the scanning engines (configuration section "Postern:Scanning"). The built-in engines
/// are on by default; ClamAV and Rspamd are off until an endpoint is configured, because an enabled
/// engine that cannot be reached defers every message.
/// </summary>
public sealed class ScanningOptions
{
    public const string Section = "Postern:Scanning";

    public AttachmentScanOptions Attachments { get; set; } = new();

    public UrlScanOptions Urls { get; set; } = new();

    public ImpersonationOptions Impersonation { get; set; } = new();

    public ClamAvOptions ClamAv { get; set; } = new();

    public RspamdOptions Rspamd { get; set; } = new();

    /// <summary>Postern's own SPF/DKIM/ARC/DMARC checks (DNS lookups through Postern:Dns).</summary>
    public bool Authentication { get; set; } = true;

    /// <summary>Longest an engine may take on one message before it counts as unavailable.</summary>
    public TimeSpan EngineTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Scanning on; off makes Postern a plain authenticated relay (every message delivered, marked not scanned).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Checks that stop start-up with one line naming the setting.</summary>
    public IEnumerable<string> Validate()
    {
        const string p = Section;
        if (EngineTimeout <= TimeSpan.Zero)
            yield return $"{p}:EngineTimeout '{EngineTimeout}' must be positive";
        if (Attachments.MaxAttachmentBytes < 1024)
            yield return $"{p}:Attachments:MaxAttachmentBytes '{Attachments.MaxAttachmentBytes}' must be at least 1024";
        if (Attachments.MaxArchiveDepth is < 1 or > 16)
            yield return $"{p}:Attachments:MaxArchiveDepth '{Attachments.MaxArchiveDepth}' must be between 1 and 16";
        if (Attachments.MaxArchiveEntries < 1)
            yield return $"{p}:Attachments:MaxArchiveEntries '{Attachments.MaxArchiveEntries}' must be at least 1";
        if (Attachments.MaxUncompressedBytes < 1024)
            yield return $"{p}:Attachments:MaxUncompressedBytes '{Attachments.MaxUncompressedBytes}' must be at least 1024";
        if (Urls.MaxUrls < 1)
            yield return $"{p}:Urls:MaxUrls '{Urls.MaxUrls}' must be at least 1";
        if (Urls.MaxTextChars < 1024)
            yield return $"{p}:Urls:MaxTextChars '{Urls.MaxTextChars}' must be at least 1024";
        if (Impersonation.MinLabelLengthForDistance1 < 3)
            yield return $"{p}:Impersonation:MinLabelLengthForDistance1 '{Impersonation.MinLabelLengthForDistance1}' must be at least 3";
        if (Impersonation.MinLabelLengthForDistance2 < Impersonation.MinLabelLengthForDistance1)
            yield return $"{p}:Impersonation:MinLabelLengthForDistance2 '{Impersonation.MinLabelLengthForDistance2}' must not be below MinLabelLengthForDistance1";
        if (ClamAv.Enabled)
        {
            if (!Scanning.Engines.ClamdEndpoint.TryParse(ClamAv.Endpoint, out _))
                yield return $"{p}:ClamAv:Endpoint '{ClamAv.Endpoint}' is not tcp://HOST:PORT, HOST:PORT, unix:PATH or an absolute socket path";
            if (ClamAv.ConnectTimeout <= TimeSpan.Zero)
                yield return $"{p}:ClamAv:ConnectTimeout '{ClamAv.ConnectTimeout}' must be positive";
            if (ClamAv.ScanTimeout <= TimeSpan.Zero)
                yield return $"{p}:ClamAv:ScanTimeout '{ClamAv.ScanTimeout}' must be positive";
            if (ClamAv.MaxStreamLength < 1024)
                yield return $"{p}:ClamAv:MaxStreamLength '{ClamAv.MaxStreamLength}' must be at least 1024 (match clamd's StreamMaxLength)";
            if (ClamAv.ChunkSize is < 1024 or > 16 * 1024 * 1024)
                yield return $"{p}:ClamAv:ChunkSize '{ClamAv.ChunkSize}' must be between 1024 and 16777216";
        }
        if (Rspamd.Enabled)
        {
            if (!Uri.TryCreate(Rspamd.Url, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
                yield return $"{p}:Rspamd:Url '{Rspamd.Url}' is not an absolute http(s) URL";
            if (Rspamd.ConnectTimeout <= TimeSpan.Zero)
                yield return $"{p}:Rspamd:ConnectTimeout '{Rspamd.ConnectTimeout}' must be positive";
            if (Rspamd.Timeout <= TimeSpan.Zero)
                yield return $"{p}:Rspamd:Timeout '{Rspamd.Timeout}' must be positive";
            if (Rspamd.MaxMessageSize < 1024)
                yield return $"{p}:Rspamd:MaxMessageSize '{Rspamd.MaxMessageSize}' must be at least 1024";
        }
    }
}

/// <summary>True attachment type, archives and their zip-bomb limits.</summary>
public sealed class AttachmentScanOptions
{
    public bool Enabled { get; set; } = true;

    /// <summary>An attachment is decoded into memory up to this size; a larger archive is reported as not inspected.</summary>
    public long MaxAttachmentBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Archives inside archives are opened this many levels deep; deeper is reported (42.zip-style bombs nest).</summary>
    public int MaxArchiveDepth { get; set; } = 3;

    /// <summary>Entries looked at per attachment, all levels together.</summary>
    public int MaxArchiveEntries { get; set; } = 2000;

    /// <summary>Bytes decompressed per attachment, all levels together; past it the archive is reported as a possible zip bomb.</summary>
    public long MaxUncompressedBytes { get; set; } = 200L * 1024 * 1024;

    /// <summary>Findings one attachment may produce (an archive of a thousand programs needs only a few lines in the trace).</summary>
    public int MaxFindingsPerAttachment { get; set; } = 25;
}

/// <summary>URL extraction from text and HTML parts.</summary>
public sealed class UrlScanOptions
{
    public bool Enabled { get; set; } = true;

    /// <summary>Distinct URLs kept per message; the rest are counted, not listed.</summary>
    public int MaxUrls { get; set; } = 500;

    /// <summary>Characters of each text or HTML part that are read (URLs further down are not extracted).</summary>
    public int MaxTextChars { get; set; } = 2 * 1024 * 1024;
}

/// <summary>Display-name impersonation of VIPs and look-alike domains of the tenant's own domains.</summary>
public sealed class ImpersonationOptions
{
    public bool Enabled { get; set; } = true;

    /// <summary>Edit distance 1 counts only for names (the label left of the public suffix) at least this long: short names collide by chance.</summary>
    public int MinLabelLengthForDistance1 { get; set; } = 4;

    /// <summary>Edit distance 2 counts only for names at least this long.</summary>
    public int MinLabelLengthForDistance2 { get; set; } = 8;

    /// <summary>Whether the tenant's name under another top-level domain (contoso.net for contoso.com) is a look-alike.</summary>
    public bool SameNameOtherSuffix { get; set; } = true;
}

/// <summary>The ClamAV daemon (clamd) and how Postern talks to it.</summary>
public sealed class ClamAvOptions
{
    public bool Enabled { get; set; }

    /// <summary>tcp://HOST:PORT, HOST:PORT, unix:/path/clamd.sock or /path/clamd.sock.</summary>
    public string Endpoint { get; set; } = "tcp://127.0.0.1:3310";

    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Whole INSTREAM exchange, sending and waiting for the verdict.</summary>
    public TimeSpan ScanTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Must not exceed clamd's StreamMaxLength (Debian's clamd.conf: 25M): a larger message is reported unscanned instead of being cut off.</summary>
    public long MaxStreamLength { get; set; } = 25L * 1024 * 1024;

    /// <summary>Size of each INSTREAM chunk.</summary>
    public int ChunkSize { get; set; } = 64 * 1024;
}

/// <summary>The Rspamd normal worker and how Postern talks to it.</summary>
public sealed class RspamdOptions
{
    public bool Enabled { get; set; }

    /// <summary>Base URL of the normal worker (not the controller); /checkv2 is appended.</summary>
    public string Url { get; set; } = "http://127.0.0.1:11333";

    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Whole request, sending and waiting for the result.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Larger messages are reported unscanned (rspamd's own max_message defaults to 50 MB).</summary>
    public long MaxMessageSize { get; set; } = 50L * 1024 * 1024;

    /// <summary>Optional Settings-Id header: selects a settings entry on the rspamd side (e.g. per-tenant thresholds).</summary>
    public string? SettingsId { get; set; }
}
