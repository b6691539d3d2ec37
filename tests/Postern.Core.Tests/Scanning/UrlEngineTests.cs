using Postern.Core.Configuration;
using Postern.Core.Scanning;
using Postern.Core.Scanning.Engines;

namespace Postern.Core.Tests.Scanning;

public sealed class UrlEngineTests
{
    [Fact]
    public void Finds_urls_in_text_without_the_sentence_around_them()
    {
        var urls = UrlExtractor.FromText(
            "Log in at https://login.example.test/reset?id=1. Or (see https://docs.example.test/a_(b)) " +
            "and www.example.org/path, also <http://tracker.example.net/x>; not mailto:x@y.test or ftp:/broken.");

        Assert.Equal(
            ["https://login.example.test/reset?id=1", "https://docs.example.test/a_(b)", "http://www.example.org/path", "http://tracker.example.net/x"],
            urls.Select(u => u.Url));
    }

    [Fact]
    public void Finds_urls_in_html_attributes_forms_and_text()
    {
        const string html = """
            <html><head><meta http-equiv="refresh" content="5; url=https://refresh.example.test/go"></head>
            <body style="background: url('https://css.example.test/bg.png')">
            <a href="https://Click.Example.TEST:443/path#frag">Click here</a>
            <a href="/relative">relative</a> <a href="mailto:a@b.test">mail</a> <img src="cid:logo">
            <img src="//cdn.example.test/pixel.gif">
            <form action="https://harvest.example.test/post"><input type="submit" formaction="http://alt.example.test/x"></form>
            <p>Visit https://text.example.test/page today.</p>
            <script>window.location = "https://script.example.test/r";</script>
            </body></html>
            """;

        var urls = UrlExtractor.FromHtml(html).Select(u => u.Url).ToList();

        Assert.Contains("https://refresh.example.test/go", urls);
        Assert.Contains("https://css.example.test/bg.png", urls);
        Assert.Contains("https://click.example.test/path", urls); // lower-case host, default port and fragment dropped
        Assert.Contains("https://cdn.example.test/pixel.gif", urls);
        Assert.Contains("https://harvest.example.test/post", urls);
        Assert.Contains("http://alt.example.test/x", urls);
        Assert.Contains("https://text.example.test/page", urls);
        Assert.Contains("https://script.example.test/r", urls);
        Assert.DoesNotContain(urls, u => u.Contains("relative") || u.StartsWith("mailto") || u.StartsWith("cid"));
    }

    [Fact]
    public void Reads_character_references_and_raw_text_as_a_browser_does()
    {
        const string html = """
            <a href="&#104;ttps&#x3a;//obfuscated.example.test/?a=1&amp;b=2">pay</a>
            <style>.x { background: url(https://style.example.test/x.png) } a<b { }</style>
            <script>if (a<b && c>d) { go(); }</script><a href='https://after-script.example.test/'>next</a>
            <textarea><img src="https://inside-textarea.example.test/no-tag.png"></textarea>
            """;

        var urls = UrlExtractor.FromHtml(html).Select(u => u.Url).ToList();

        Assert.Contains("https://obfuscated.example.test/?a=1&b=2", urls);
        Assert.Contains("https://style.example.test/x.png", urls);
        Assert.Contains("https://after-script.example.test/", urls);
        // A textarea's content is text, not markup: its URL is found in the text, once, with the quote trimmed.
        Assert.Contains("https://inside-textarea.example.test/no-tag.png", urls);
        Assert.DoesNotContain(urls, u => u.Contains("no-tag.png\"", StringComparison.Ordinal));
    }

    [Fact]
    public void Finds_links_under_any_depth_of_nesting()
    {
        var html = string.Concat(Enumerable.Repeat("<div>", 20_000)) + "<a href=\"https://deep.example.test/\">x</a>";

        Assert.Contains("https://deep.example.test/", UrlExtractor.FromHtml(html).Select(u => u.Url));
    }

    [Fact]
    public void Normalises_hosts_to_punycode_and_drops_user_info()
    {
        var url = UrlExtractor.Normalize("HTTPS://user:pw@Bücher.Example/Ä?q=1#top");

        Assert.NotNull(url);
        Assert.Equal("xn--bcher-kva.example", url.Host);
        Assert.Equal("https://xn--bcher-kva.example/%C3%84?q=1", url.Url);
        Assert.Null(UrlExtractor.Normalize("javascript:alert(1)"));
        Assert.Null(UrlExtractor.Normalize("data:text/html,hi"));
    }

    [Fact]
    public async Task Gives_one_finding_per_host_with_a_url_as_subject()
    {
        var message = ScanContexts.Message(
            text: "See https://a.example.test/1 and https://a.example.test/2 and https://b.example.test/.\r\n",
            html: "<p><a href=\"https://a.example.test/1\">one</a> <a href=\"https://c.example.test/form\">form</a></p>");

        var findings = await new UrlEngine().ScanAsync(ScanContexts.For(message), CancellationToken.None);

        Assert.All(findings, f => Assert.Equal(FindingKinds.Url, f.Kind));
        Assert.Equal(["https://a.example.test/1", "https://b.example.test/", "https://c.example.test/form"], findings.Select(f => f.Subject));
        Assert.Contains("2 distinct URLs", findings[0].Reason);
    }

    [Fact]
    public async Task Caps_the_number_of_urls()
    {
        var text = string.Join(" ", Enumerable.Range(0, 50).Select(i => $"https://h{i}.example.test/"));
        var engine = new UrlEngine(new UrlScanOptions { MaxUrls = 10 });

        var findings = await engine.ScanAsync(ScanContexts.For(ScanContexts.Message(text: text)), CancellationToken.None);

        Assert.Equal(11, findings.Count);
        Assert.Null(findings[^1].Subject);
        Assert.Contains("more than 10", findings[^1].Reason);
    }

    [Fact]
    public async Task Reads_urls_in_attached_html_pages()
    {
        var page = TestFiles.Text("<html><form action=\"https://phish.example.test/login\"><input name=p></form></html>");
        var message = ScanContexts.Message(text: "no links here");
        message.Body = new MimeKit.Multipart("mixed")
        {
            message.Body!,
            new MimeKit.TextPart("html") { Text = System.Text.Encoding.UTF8.GetString(page), FileName = "statement.html" },
        };

        var findings = await new UrlEngine().ScanAsync(ScanContexts.For(message), CancellationToken.None);

        Assert.Equal("https://phish.example.test/login", Assert.Single(findings).Subject);
    }
}
