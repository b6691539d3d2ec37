using System.Text;
using System.Text.RegularExpressions;
using AngleSharp.Html;
using AngleSharp.Html.Parser;
using AngleSharp.Html.Parser.Tokens;
using AngleSharp.Text;

namespace Postern.Core.Scanning.Engines;

/// <summary>One URL found in a message, normalised.</summary>
/// <param name="Url">Normal form: lower-case scheme and host (IDNs as punycode), no user info, default port or fragment.</param>
/// <param name="Host">The host, lower-case ASCII (punycode) or an IP literal.</param>
public sealed record ExtractedUrl(string Url, string Host);

/// <summary>
/// Finds the http(s) and ftp URLs a reader could follow: in plain text by pattern (with or without a
/// scheme when they start with <c>www.</c>), in HTML from every attribute that navigates or loads
/// (href, src, form action, formaction, object data, background, meta refresh, CSS url()) and from
/// the document's text. URLs are normalised so that the same link written twice counts once, and
/// relative links, mailto:, cid: and data: are left out: they lead nowhere outside the message.
/// </summary>
public static partial class UrlExtractor
{
    private static readonly string[] NavigatingAttributes = ["href", "src", "action", "formaction", "data", "background", "poster", "lowsrc", "dynsrc"];

    [GeneratedRegex(@"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>""'`\u0000-\u001f\u007f\u00a0\u2028\u2029]+", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex TextUrl();

    [GeneratedRegex(@"url\(\s*['""]?([^'"")\s]+)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex CssUrl();

    [GeneratedRegex(@"url\s*=\s*['""]?([^'""\s>]+)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex RefreshUrl();

    /// <summary>URLs in plain text, in order of appearance, without duplicates.</summary>
    public static IReadOnlyList<ExtractedUrl> FromText(string text, int maxUrls = int.MaxValue)
    {
        var found = new UrlSet(maxUrls);
        AddFromText(found, text);
        return found.Urls;
    }

    /// <summary>URLs in an HTML document's attributes and text, in order of appearance, without duplicates.</summary>
    public static IReadOnlyList<ExtractedUrl> FromHtml(string html, int maxUrls = int.MaxValue)
    {
        var found = new UrlSet(maxUrls);
        AddFromHtml(found, html);
        return found.Urls;
    }

    internal static void AddFromText(UrlSet found, string text)
    {
        foreach (Match match in TextUrl().Matches(text))
        {
            if (found.Full)
                return;
            found.Add(TrimTrailingPunctuation(match.Value));
        }
    }

    /// <summary>
    /// Reads the HTML with the HTML5 tokenizer alone (AngleSharp's, so attribute values and character references
    /// come out as a browser reads them) and builds no document: finding links needs the tags and the text, not
    /// the tree, and the tree cost more than everything else the URL engine does. The tokenizer is switched to
    /// raw text after the elements whose content is not markup (script, style, title, …), as the tree builder does.
    /// </summary>
    internal static void AddFromHtml(UrlSet found, string html)
    {
        var tokenizer = new HtmlTokenizer(new TextSource(html), HtmlEntityProvider.Resolver) { SkipComments = true };
        var text = new StringBuilder();
        var inStyle = false;
        while (!found.Full)
        {
            var token = tokenizer.Get();
            switch (token.Type)
            {
                case HtmlTokenType.EndOfFile:
                    // Text (including script bodies, where redirects are written) can carry URLs no tag points at.
                    AddFromText(found, text.ToString());
                    return;
                case HtmlTokenType.Character:
                    text.Append(token.Data);
                    if (inStyle)
                        foreach (Match m in CssUrl().Matches(token.Data))
                            found.Add(m.Groups[1].Value);
                    break;
                case HtmlTokenType.StartTag:
                    var tag = token.AsTag();
                    AddFromAttributes(found, tag);
                    inStyle = tag.Name == "style";
                    tokenizer.State = ContentMode(tag.Name);
                    break;
                case HtmlTokenType.EndTag:
                    inStyle = false;
                    tokenizer.State = HtmlParseMode.PCData;
                    break;
            }
        }
    }

    private static void AddFromAttributes(UrlSet found, HtmlTagToken tag)
    {
        foreach (var attribute in tag.Attributes)
        {
            var name = attribute.Name;
            if (NavigatingAttributes.Contains(name))
                found.Add(attribute.Value);
            else if (name == "style")
                foreach (Match m in CssUrl().Matches(attribute.Value))
                    found.Add(m.Groups[1].Value);
            else if (name == "content" && string.Equals(tag.GetAttribute("http-equiv"), "refresh", StringComparison.OrdinalIgnoreCase))
                foreach (Match m in RefreshUrl().Matches(attribute.Value))
                    found.Add(m.Groups[1].Value);
        }
    }

    /// <summary>How the content after a start tag is read (HTML's tree construction, scripting disabled).</summary>
    private static HtmlParseMode ContentMode(string tagName) => tagName switch
    {
        "script" => HtmlParseMode.Script,
        "style" or "xmp" or "iframe" or "noembed" or "noframes" => HtmlParseMode.Rawtext,
        "title" or "textarea" => HtmlParseMode.RCData,
        "plaintext" => HtmlParseMode.Plaintext,
        _ => HtmlParseMode.PCData,
    };

    /// <summary>The normal form of <paramref name="raw"/>, or null when it is not an absolute http(s)/ftp URL with a host.</summary>
    public static ExtractedUrl? Normalize(string raw)
    {
        var text = raw.Trim().Trim('<', '>', '"', '\'').Trim();
        if (text.Length is 0 or > 4096)
            return null;
        text = string.Concat(text.Where(c => c is not ('\t' or '\r' or '\n'))); // browsers drop these inside URLs
        if (text.StartsWith("//", StringComparison.Ordinal))
            text = "https:" + text;
        else if (text.StartsWith("www.", StringComparison.OrdinalIgnoreCase))
            text = "http://" + text;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https" or "ftp"))
            return null;
        string host;
        try
        {
            host = uri.HostNameType == UriHostNameType.IPv6 ? uri.Host : uri.IdnHost;
        }
        catch (InvalidOperationException)
        {
            return null;
        }
        host = host.TrimEnd('.').ToLowerInvariant();
        if (host.Length == 0)
            return null;
        var port = uri.IsDefaultPort ? "" : $":{uri.Port}";
        return new ExtractedUrl($"{uri.Scheme}://{host}{port}{uri.PathAndQuery}", host);
    }

    /// <summary>Text ends a URL with punctuation that belongs to the sentence ("see https://x.test/a)." → "https://x.test/a").</summary>
    internal static string TrimTrailingPunctuation(string url)
    {
        var end = url.Length;
        while (end > 0)
        {
            var c = url[end - 1];
            if (c is '.' or ',' or ';' or ':' or '!' or '?' or '*' or '\'' or '"')
            {
                end--;
                continue;
            }
            if (c is ')' or ']' or '}')
            {
                var open = c == ')' ? '(' : c == ']' ? '[' : '{';
                var span = url.AsSpan(0, end);
                if (span.Count(open) < span.Count(c))
                {
                    end--;
                    continue;
                }
            }
            break;
        }
        return url[..end];
    }
}

/// <summary>Distinct normalised URLs, up to a limit; further ones are only counted.</summary>
internal sealed class UrlSet(int max)
{
    private readonly HashSet<string> seen = new(StringComparer.Ordinal);
    private readonly List<ExtractedUrl> urls = [];

    public IReadOnlyList<ExtractedUrl> Urls => urls;

    /// <summary>Distinct URLs seen beyond the limit.</summary>
    public int Dropped { get; private set; }

    public bool Full => urls.Count >= max && Dropped > 0;

    public void Add(string raw)
    {
        var url = UrlExtractor.Normalize(raw);
        if (url is null || !seen.Add(url.Url))
            return;
        if (urls.Count < max)
            urls.Add(url);
        else
            Dropped++;
    }
}
