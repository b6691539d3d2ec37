using System.Security.Cryptography.X509Certificates;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>`postern serve` on nothing but its embedded defaults, as on a first run from the README.</summary>
public sealed class ServeDefaultsTests(ITestOutputHelper output) : EndToEndTest(output)
{
    private const int DefaultPort = 2525;

    [FactWhenPortFree(DefaultPort)]
    public async Task Serve_without_options_creates_postern_data_in_the_working_directory_and_listens_on_loopback_2525()
    {
        var work = Directory.Sub("cwd");
        await Postern.StartServeWithDefaultsAsync(work, $"127.0.0.1:{DefaultPort}");

        var data = Path.Combine(work, "postern-data");
        Assert.True(File.Exists(Path.Combine(data, "postern.db")), $"no database in {data}");
        Assert.True(System.IO.Directory.Exists(Path.Combine(data, "spool")), $"no spool in {data}");
        foreach (var region in new[] { "au", "eu", "us" })
            Assert.True(File.Exists(Path.Combine(data, "certs", $"{region}.pfx")), $"no self-signed certificate for region {region} in {data}/certs");

        // The Microsoft 365-facing listener: STARTTLS first, then the generated certificate of the default region (us).
        await using var client = await RawSmtpClient.ConnectAsync(DefaultPort);
        Assert.Equal(220, client.Greeting.Code);
        var ehlo = await client.HelloAsync();
        Assert.Contains(ehlo.Lines, l => l.Equals("STARTTLS", StringComparison.OrdinalIgnoreCase));
        var mail = await client.CommandAsync("MAIL FROM:<sender@external.test>");
        Assert.True(mail.Is(530, "5.7.0"), mail.ToString());
        await client.HelloAsync(startTls: true);
        using var generated = X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(data, "certs", "us.pfx"), null);
        Assert.Equal(generated.Thumbprint, client.RemoteCertificate?.GetCertHashString());

        // The HTTP endpoint's default: loopback 8080, with the health and metrics endpoints.
        using (var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) })
        {
            await Poll.UntilAsync(() => FreePort.Accepts(8080), TimeSpan.FromSeconds(20), "HTTP on 127.0.0.1:8080");
            var live = await http.GetAsync("http://127.0.0.1:8080/healthz/live");
            Assert.Equal(System.Net.HttpStatusCode.OK, live.StatusCode);
            Assert.Contains("postern_build_info", await http.GetStringAsync("http://127.0.0.1:8080/metrics"));
        }

        // A command run from the same directory without --data-dir finds the same data.
        var tenants = (await Postern.RunCliVerbatimAsync(work, "tenant", "add", "contoso", "--tenant-id", Guid.NewGuid().ToString(), "--region", "us")).EnsureSuccess();
        Assert.Contains("contoso", tenants.StdOut);
        Assert.Contains("contoso", (await Postern.RunCliVerbatimAsync(work, "tenant", "list", "--data-dir", data)).EnsureSuccess().StdOut);
    }
}
