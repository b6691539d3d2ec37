using MimeKit;
using Postern.Core.Configuration;

namespace Postern.Core.Scanning.Engines;

/// <summary>
/// Lists the URLs a message leads to, from its text and HTML parts (attached HTML pages included:
/// phishing forms travel as attachments). Gives one <see cref="FindingKinds.Url"/> finding per
/// distinct host, with the first URL seen for that host as the subject, so policy rules and
/// reputation checks can match hosts without reading every link of a newsletter.
/// </summary>
public sealed class UrlEngine(UrlScanOptions options) : IScanEngine
{
    public const string EngineName = "urls";

    public UrlEngine()
        : this(new UrlScanOptions())
    {
    }

    public string Name => EngineName;

    public ValueTask<IReadOnlyList<Finding>> ScanAsync(ScanContext context, CancellationToken cancellationToken)
    {
        try
        {
            return ValueTask.FromResult(Scan(context.Message, cancellationToken));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            return ValueTask.FromResult<IReadOnlyList<Finding>>(
                [new Finding(EngineName, FindingKinds.EngineUnavailable, $"URL extraction failed ({e.GetType().Name}: {e.Message})")]);
        }
    }

    /// <summary>The URLs of a message, normalised, deduplicated and capped at <see cref="UrlScanOptions.MaxUrls"/>.</summary>
    public IReadOnlyList<ExtractedUrl> Extract(MimeMessage message, CancellationToken cancellationToken = default) =>
        Collect(message, cancellationToken).Urls;

    private IReadOnlyList<Finding> Scan(MimeMessage message, CancellationToken cancellationToken)
    {
        var set = Collect(message, cancellationToken);
        var findings = new List<Finding>();
        foreach (var group in set.Urls.GroupBy(u => u.Host))
        {
            var count = group.Count();
            var reason = count == 1 ? $"link to {group.Key}" : $"links to {group.Key} ({count} distinct URLs)";
            findings.Add(new Finding(EngineName, FindingKinds.Url, reason, Subject: group.First().Url));
        }
        if (set.Dropped > 0)
            findings.Add(new Finding(EngineName, FindingKinds.Url, $"more than {options.MaxUrls} distinct URLs; the rest are not listed"));
        return findings;
    }

    private UrlSet Collect(MimeMessage message, CancellationToken cancellationToken)
    {
        var set = new UrlSet(options.MaxUrls);
        foreach (var leaf in MessageParts.Enumerate(message))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (set.Full)
                break;
            if (leaf.Part is not TextPart text || text.Content is null)
                continue;
            var body = ReadText(text);
            if (body.Length > options.MaxTextChars)
                body = body[..options.MaxTextChars];
            if (text.IsHtml)
                UrlExtractor.AddFromHtml(set, body);
            else
                UrlExtractor.AddFromText(set, body);
        }
        return set;
    }

    private static string ReadText(TextPart part)
    {
        try
        {
            return part.Text ?? "";
        }
        catch (Exception e) when (e is FormatException or ArgumentException or NotSupportedException or IOException)
        {
            return ""; // undecodable charset or transfer encoding: nothing a reader could click either
        }
    }
}
