using Microsoft.Data.Sqlite;
using Postern.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace Postern.EndToEnd;

/// <summary>`postern doctor` on a node with things wrong around it: each problem named, with what to do.</summary>
public sealed class DoctorTests(ITestOutputHelper output) : EndToEndTest(output)
{
    [Fact]
    public async Task On_a_broken_node_it_names_each_problem_and_the_fix_and_exits_2()
    {
        var dns = Own(await DnsServer.StartAsync(Directory, DnsServer.CatchAllZone)); // publishes no ARC key
        var config = new PosternConfig
        {
            Listeners = [new PosternListener("m365", FreePort.Next())],
            DnsServers = [dns.EndPoint],
            Extra = new System.Text.Json.Nodes.JsonObject { ["Region"] = "eu" },
        };
        await Postern.CreateTenantAsync("contoso", "contoso.test", "127.0.0.1:25");
        await Postern.CreateTenantAsync("fabrikam", "fabrikam.test", "127.0.0.1:25");
        // A first start makes the region certificates and the ARC key; then the node is stopped.
        await Postern.StartServeAsync(config);
        await Postern.StopAsync();
        using (var connection = new SqliteConnection($"Data Source={Path.Combine(Postern.DataDirectory, "postern.db")};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "DELETE FROM tenant_certificates WHERE tenant_id = (SELECT id FROM tenants WHERE name = 'fabrikam')";
            Assert.Equal(1, command.ExecuteNonQuery());
        }
        Postern.UseClamAv("unix:" + Directory.PathOf("no-clamd.sock"));
        using var squatter = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, config.HttpPort);
        squatter.Start();

        var doctor = await Postern.RunCliAsync("doctor", "--config", Postern.ConfigPath!);

        Assert.True(doctor.ExitCode == 2, doctor.ToString());
        var lines = doctor.StdOut.Split('\n');
        Assert.Contains(lines, l => l.StartsWith("OK    configuration", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("FAIL  clamav: does not answer", StringComparison.Ordinal) && l.Contains("Postern:Scanning:ClamAv:Endpoint"));
        Assert.Contains(lines, l => l.StartsWith("FAIL  ARC key in DNS: postern1._domainkey.arc.postern.example has no key", StringComparison.Ordinal)
            && l.Contains("fix: publish postern1._domainkey.arc.postern.example. IN TXT \"v=DKIM1; k=rsa; p="));
        Assert.Contains(lines, l => l.StartsWith("FAIL  certificate of tenant fabrikam: none", StringComparison.Ordinal) && l.Contains("postern tenant certificate renew fabrikam"));
        Assert.Contains(lines, l => l.StartsWith("OK    certificate of tenant contoso: valid until", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("WARN  certificate of region eu: self-signed", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("OK    certificate of region eu: names *.eu.postern.example", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith($"WARN  HTTP: 127.0.0.1:{config.HttpPort} is in use", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("OK    SMTP listener m365", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("OK    disk", StringComparison.Ordinal));
    }
}
