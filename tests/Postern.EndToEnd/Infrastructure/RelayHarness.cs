namespace Postern.EndToEnd.Infrastructure;

/// <summary>
/// The relay with nothing real around it: one smtp-sink stands in for every next hop. Tenants
/// "contoso" (contoso.test) and "fabrikam" (fabrikam.test) deliver to it, and a catch-all DNS server
/// sends every other domain's MX to 127.0.0.1 with Postern's MX port set to the sink, so any message
/// Postern relays anywhere lands in <see cref="Sink"/>. Postern listens on an M365 listener
/// (STARTTLS required) and a plain one; delivery does not require TLS (smtp-sink has none).
/// </summary>
public sealed class RelayHarness : IAsyncDisposable
{
    public const string ExternalSender = "sender@external.test";

    private RelayHarness(SmtpSink sink, DnsServer dns, PosternConfig config, TestTenant contoso, TestTenant fabrikam)
    {
        Sink = sink;
        Dns = dns;
        Config = config;
        Contoso = contoso;
        Fabrikam = fabrikam;
    }

    public SmtpSink Sink { get; }
    public DnsServer Dns { get; }
    public PosternConfig Config { get; }
    public TestTenant Contoso { get; }
    public TestTenant Fabrikam { get; }

    /// <summary>The listener that requires STARTTLS before MAIL.</summary>
    public int M365Port => Config.Listener("m365").Port;

    /// <summary>The listener that does not require TLS (for smtp-source, swaks without --tls, raw sessions).</summary>
    public int PlainPort => Config.Listener("plain").Port;

    public static async Task<RelayHarness> StartAsync(TestDirectory directory, PosternProcess postern, PosternConfig? config = null)
    {
        var sink = await SmtpSink.StartAsync(directory, "sink");
        DnsServer? dns = null;
        try
        {
            dns = await DnsServer.StartAsync(directory, DnsServer.CatchAllZone);
            config ??= PosternConfig.WithPlainListener(deliveryRequireTls: false, mxPort: sink.Port, dnsServers: [dns.EndPoint]);
            var mta = $"127.0.0.1:{sink.Port}";
            var contoso = await postern.CreateTenantAsync("contoso", "contoso.test", mta);
            var fabrikam = await postern.CreateTenantAsync("fabrikam", "fabrikam.test", mta);
            await postern.StartServeAsync(config);
            return new RelayHarness(sink, dns, config, contoso, fabrikam);
        }
        catch
        {
            if (dns is not null)
                await dns.DisposeAsync();
            await sink.DisposeAsync();
            throw;
        }
    }

    /// <summary>swaks to the plain listener: external sender → <paramref name="to"/>, with <paramref name="headers"/> added.</summary>
    public Task<SwaksResult> SendPlainAsync(string to, string subject, params string[] headers)
    {
        var extra = headers.SelectMany(h => new[] { "--add-header", h }).ToArray();
        return Swaks.SendAsync(PlainPort, ExternalSender, to, subject, extra);
    }

    public async ValueTask DisposeAsync()
    {
        await Dns.DisposeAsync();
        await Sink.DisposeAsync();
    }
}
