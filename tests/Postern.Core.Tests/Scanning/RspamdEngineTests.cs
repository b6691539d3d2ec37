using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Postern.Core.Configuration;
using Postern.Core.Scanning;
using Postern.Core.Scanning.Engines;
using Postern.Core.Tests.Scanning.Daemons;

namespace Postern.Core.Tests.Scanning;

/// <summary>The rspamd engine against a real rspamd (Debian rspamd) shared by the run.</summary>
[Collection(RspamdCollection.Name)]
public sealed class RspamdEngineTests(RspamdFixture rspamd)
{
    /// <summary>rspamd looks for GTUBE only in text parts of at most 8 KB, so test messages stay small.</summary>
    private const string Gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

    private async Task<IReadOnlyList<Finding>> ScanAsync(MimeKit.MimeMessage message, RspamdOptions? options = null)
    {
        using var engine = new RspamdEngine(options ?? rspamd.Options());
        return await engine.ScanAsync(ScanContexts.For(message), CancellationToken.None);
    }

    [Fact]
    public async Task Gives_gtube_the_spam_verdict()
    {
        var findings = await ScanAsync(ScanContexts.Message(text: $"Buy now!\r\n{Gtube}\r\n"));

        var spam = Assert.Single(findings, f => f.Kind == FindingKinds.Spam);
        Assert.Equal(RspamdEngine.EngineName, spam.Engine);
        Assert.Equal("GTUBE", spam.Subject);
        Assert.Contains("reject", spam.Reason);
        Assert.Contains("GTUBE", spam.Reason);
        var score = Assert.Single(findings, f => f.Kind == FindingKinds.SpamScore);
        Assert.True(score.Score >= 15, $"score {score.Score}");
    }

    [Fact]
    public async Task Gives_an_ordinary_message_only_its_score()
    {
        var findings = await ScanAsync(ScanContexts.Message(text: "Hi Bob,\r\nthe meeting moved to 3 pm.\r\nAlice\r\n"));

        var score = Assert.Single(findings);
        Assert.Equal(FindingKinds.SpamScore, score.Kind);
        Assert.Contains("action 'no action'", score.Reason);
        Assert.InRange(score.Score, -5, 6);
    }

    [Fact]
    public async Task Sends_the_envelope_with_every_recipient()
    {
        var message = ScanContexts.Message();
        message.To.Add(MimeKit.MailboxAddress.Parse("carol@contoso.com"));
        using var client = new RspamdClient(rspamd.Options());
        using var raw = new MemoryStream(System.Text.Encoding.UTF8.GetBytes(message.ToString()));

        var result = await client.CheckAsync(raw, new RspamdRequest("203.0.113.5", "mail.example.net", "alice@example.net",
            ["bob@contoso.com", "carol@contoso.com"], "TESTQ1"));

        // rspamd matched both header recipients against the envelope it was given.
        Assert.Contains(result.Symbols, s => s.Name == "TO_MATCH_ENVRCPT_ALL");
        Assert.Contains(result.Symbols, s => s.Name == "RCPT_COUNT_TWO");
    }

    [Fact]
    public async Task Answers_ping()
    {
        using var client = new RspamdClient(rspamd.Options());
        Assert.Equal("pong", await client.PingAsync());
    }

    [Fact]
    public async Task Reports_rspamd_down_as_unavailable_quickly()
    {
        var options = new RspamdOptions { Enabled = true, Url = $"http://127.0.0.1:{DaemonProcess.FreePort()}" };

        var stopwatch = Stopwatch.StartNew();
        var finding = Assert.Single(await ScanAsync(ScanContexts.Message(text: Gtube), options));

        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(3), $"took {stopwatch.Elapsed}");
        Assert.Equal(FindingKinds.EngineUnavailable, finding.Kind);
        Assert.Contains("is not reachable", finding.Reason);
    }

    [Fact]
    public async Task Reports_an_rspamd_that_never_answers_within_the_timeout()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var accepted = new List<Socket>();
        var acceptLoop = Task.Run(async () =>
        {
            try
            {
                while (true)
                    accepted.Add(await listener.AcceptSocketAsync());
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        });
        var options = new RspamdOptions { Enabled = true, Url = $"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}", Timeout = TimeSpan.FromSeconds(1) };

        var stopwatch = Stopwatch.StartNew();
        var finding = Assert.Single(await ScanAsync(ScanContexts.Message(), options));

        Assert.InRange(stopwatch.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(5));
        Assert.Equal(FindingKinds.EngineUnavailable, finding.Kind);
        Assert.Contains("did not answer within 1 s", finding.Reason);
        listener.Stop();
        await acceptLoop;
        accepted.ForEach(s => s.Dispose());
    }

    [Fact]
    public async Task Reports_a_message_over_the_size_limit_as_unavailable()
    {
        var options = rspamd.Options();
        options.MaxMessageSize = 1024;

        var finding = Assert.Single(await ScanAsync(ScanContexts.Message(text: new string('x', 4000)), options));

        Assert.Equal(FindingKinds.EngineUnavailable, finding.Kind);
        Assert.Contains("MaxMessageSize", finding.Reason);
    }

    [Theory]
    [InlineData("reject", true)]
    [InlineData("add header", true)]
    [InlineData("rewrite subject", true)]
    [InlineData("soft reject", false)]
    [InlineData("greylist", false)]
    [InlineData("no action", false)]
    public void Turns_actions_into_findings(string action, bool spam)
    {
        var result = RspamdResult.Parse($$$"""
            {"is_skipped":false,"score":7.5,"required_score":15.0,"action":"{{{action}}}",
             "symbols":{"A":{"name":"A","score":1.5},"B":{"name":"B","score":6.0,"options":["x"]}},
             "messages":{}}
            """);

        var findings = RspamdEngine.ToFindings(result);

        Assert.Equal(7.5, Assert.Single(findings, f => f.Kind == FindingKinds.SpamScore).Score);
        Assert.Equal(spam, findings.Any(f => f.Kind == FindingKinds.Spam));
        if (spam)
            Assert.Contains("symbols: B(6), A(1.5)", findings.Single(f => f.Kind == FindingKinds.Spam).Reason);
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("[1,2]")]
    [InlineData("{\"error\":\"bad request\"}")]
    [InlineData("{\"score\":1}")]
    public void Refuses_replies_that_are_not_results(string json)
    {
        Assert.Throws<RspamdException>(() => RspamdResult.Parse(json));
    }
}
