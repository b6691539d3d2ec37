using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Postern.Core.Configuration;
using Postern.Core.Scanning;
using Postern.Core.Scanning.Engines;
using Postern.Core.Tests.Scanning.Daemons;

namespace Postern.Core.Tests.Scanning;

/// <summary>The ClamAV engine against a real clamd (Debian clamav-daemon) with the shipped EICAR signature.</summary>
public sealed class ClamAvEngineTests(ClamdFixture fixture) : IClassFixture<ClamdFixture>
{
    private const string Signature = "Test.EICAR.NDB.UNOFFICIAL";
    private static readonly string EicarText = Encoding.ASCII.GetString(TestFiles.Eicar);

    private ClamdInstance Clamd => fixture.Clamd;

    private static async Task<IReadOnlyList<Finding>> ScanAsync(ClamAvOptions options, MimeKit.MimeMessage message)
    {
        var engine = new ClamAvEngine(options);
        return await engine.ScanAsync(ScanContexts.For(message), CancellationToken.None);
    }

    private static void AssertVirus(IReadOnlyList<Finding> findings)
    {
        var virus = Assert.Single(findings);
        Assert.Equal(FindingKinds.Virus, virus.Kind);
        Assert.Equal(ClamAvEngine.EngineName, virus.Engine);
        Assert.Equal(Signature, virus.Subject);
        Assert.Contains(Signature, virus.Reason);
    }

    private static Finding AssertUnavailable(IReadOnlyList<Finding> findings)
    {
        var finding = Assert.Single(findings);
        Assert.Equal(FindingKinds.EngineUnavailable, finding.Kind);
        Assert.Equal(ClamAvEngine.EngineName, finding.Engine);
        return finding;
    }

    [Fact]
    public async Task Finds_eicar_in_a_plain_text_message()
    {
        AssertVirus(await ScanAsync(Clamd.TcpOptions(), ScanContexts.Message(text: EicarText + "\r\n")));
    }

    [Fact]
    public async Task Finds_eicar_in_a_base64_attachment()
    {
        var message = ScanContexts.Message(attachments: ("eicar.com", TestFiles.Eicar));
        Assert.Contains("Content-Transfer-Encoding: base64", message.ToString());

        AssertVirus(await ScanAsync(Clamd.TcpOptions(), message));
    }

    [Fact]
    public async Task Finds_eicar_inside_a_zip_attachment_over_the_unix_socket()
    {
        var message = ScanContexts.Message(attachments: ("report.zip", TestFiles.Zip(("docs/eicar.com", TestFiles.Eicar))));

        AssertVirus(await ScanAsync(Clamd.UnixOptions(), message));
    }

    [Fact]
    public async Task Finds_nothing_in_a_clean_message()
    {
        var message = ScanContexts.Message(attachments: ("report.zip", TestFiles.Zip(("notes.txt", TestFiles.Text("All clean.")))));

        Assert.Empty(await ScanAsync(Clamd.TcpOptions(), message));
        Assert.Empty(await ScanAsync(Clamd.UnixOptions(), message));
    }

    [Fact]
    public async Task Answers_ping_and_version()
    {
        var client = new ClamdClient(Clamd.TcpOptions());
        Assert.Equal("PONG", await client.PingAsync());
        Assert.StartsWith("ClamAV ", await client.VersionAsync());
    }

    [Fact]
    public async Task Reports_a_stopped_clamd_as_unavailable_quickly()
    {
        var clamd = await ClamdInstance.StartAsync();
        var tcp = clamd.TcpOptions();
        var unix = clamd.UnixOptions();
        var message = ScanContexts.Message(attachments: ("eicar.com", TestFiles.Eicar));
        AssertVirus(await ScanAsync(tcp, message));
        await clamd.StopAsync();

        var stopwatch = Stopwatch.StartNew();
        var overTcp = AssertUnavailable(await ScanAsync(tcp, message));
        var overUnix = AssertUnavailable(await ScanAsync(unix, message));

        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(3), $"took {stopwatch.Elapsed}");
        Assert.Contains("could not connect to clamd at tcp://127.0.0.1:", overTcp.Reason);
        Assert.Contains($"could not connect to clamd at unix:{clamd.SocketPath}", overUnix.Reason);
    }

    [Fact]
    public async Task Reports_clamds_size_limit_error_as_unavailable()
    {
        await using var small = await ClamdInstance.StartAsync(streamMaxLength: "10K");
        var big = ScanContexts.Message(attachments: ("big.bin", RandomBytes(67 * 1024)));

        // Postern's own limit is set too high (a misconfiguration): clamd refuses and hangs up, and says why.
        var finding = AssertUnavailable(await ScanAsync(small.TcpOptions(maxStreamLength: 25L * 1024 * 1024), big));

        Assert.Contains("INSTREAM size limit exceeded. ERROR", finding.Reason);
    }

    [Fact]
    public async Task Refuses_a_message_over_its_stream_limit_before_sending()
    {
        var big = ScanContexts.Message(attachments: ("big.bin", RandomBytes(8 * 1024)));

        var finding = AssertUnavailable(await ScanAsync(Clamd.TcpOptions(maxStreamLength: 4096), big));

        Assert.Contains("MaxStreamLength", finding.Reason);
    }

    [Fact]
    public async Task Reports_a_clamd_that_never_answers_within_the_scan_timeout()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var accepted = new List<Socket>();
        var acceptLoop = Task.Run(async () =>
        {
            try
            {
                while (true)
                    accepted.Add(await listener.AcceptSocketAsync()); // reads nothing, answers nothing
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        });
        var options = new ClamAvOptions
        {
            Enabled = true,
            Endpoint = $"127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}",
            ConnectTimeout = TimeSpan.FromSeconds(1),
            ScanTimeout = TimeSpan.FromSeconds(1),
        };

        var stopwatch = Stopwatch.StartNew();
        var finding = AssertUnavailable(await ScanAsync(options, ScanContexts.Message()));

        Assert.InRange(stopwatch.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(5));
        Assert.Contains("did not answer within 1 s", finding.Reason);
        listener.Stop();
        await acceptLoop;
        accepted.ForEach(s => s.Dispose());
    }

    [Theory]
    [InlineData("stream: OK", ClamdStatus.Clean, null)]
    [InlineData("stream: Win.Test.EICAR_HDB-1 FOUND", ClamdStatus.Infected, "Win.Test.EICAR_HDB-1")]
    [InlineData("INSTREAM size limit exceeded. ERROR", ClamdStatus.Error, null)]
    [InlineData("stream: Can't allocate memory ERROR", ClamdStatus.Error, null)]
    [InlineData("UNKNOWN COMMAND", ClamdStatus.Error, null)]
    public void Parses_instream_replies(string reply, ClamdStatus status, string? signature)
    {
        var result = ClamdResult.Parse(reply + "\0");
        Assert.Equal(status, result.Status);
        Assert.Equal(signature, result.Signature);
    }

    [Theory]
    [InlineData("tcp://127.0.0.1:3310", "tcp://127.0.0.1:3310")]
    [InlineData("localhost:3310", "tcp://localhost:3310")]
    [InlineData("[::1]:3310", "tcp://[::1]:3310")]
    [InlineData("unix:/run/clamav/clamd.ctl", "unix:/run/clamav/clamd.ctl")]
    [InlineData("unix:///run/clamav/clamd.ctl", "unix:/run/clamav/clamd.ctl")]
    [InlineData("/run/clamav/clamd.ctl", "unix:/run/clamav/clamd.ctl")]
    public void Parses_endpoints(string text, string expected)
    {
        Assert.True(ClamdEndpoint.TryParse(text, out var endpoint));
        Assert.Equal(expected, endpoint.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("localhost")]
    [InlineData("tcp://host:99999")]
    [InlineData("unix:relative.sock")]
    public void Rejects_bad_endpoints(string text)
    {
        Assert.False(ClamdEndpoint.TryParse(text, out _));
        Assert.Contains(new ScanningOptions { ClamAv = { Enabled = true, Endpoint = text } }.Validate(), e => e.Contains("ClamAv:Endpoint"));
    }

    private static byte[] RandomBytes(int length)
    {
        var data = new byte[length];
        new Random(length).NextBytes(data);
        return data;
    }
}
