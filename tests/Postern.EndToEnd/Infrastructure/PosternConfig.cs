using System.Text.Json;
using System.Text.Json.Nodes;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>One SMTP listener of the server under test.</summary>
public sealed record PosternListener(string Name, int Port, bool RequireTls = true, bool Handoff = false)
{
    public string EndPoint => $"127.0.0.1:{Port}";

    /// <summary>CIDR networks allowed to connect; empty allows all.</summary>
    public IReadOnlyList<string> AllowedClientNetworks { get; init; } = [];
}

/// <summary>
/// The JSON configuration file `postern serve --config` reads (section "Postern"), with test-friendly
/// defaults: short retry delays, loopback DNS, no certificate validation of self-signed peers.
/// </summary>
public sealed class PosternConfig
{
    public string HostName { get; init; } = "postern.test";

    public required IReadOnlyList<PosternListener> Listeners { get; init; }

    public bool DeliveryRequireTls { get; init; } = true;

    public bool ValidateServerCertificate { get; init; }

    public IReadOnlyList<TimeSpan> RetryDelays { get; init; } =
        [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(5)];

    public TimeSpan MaxAge { get; init; } = TimeSpan.FromDays(2);

    public int MxPort { get; init; } = 25;

    /// <summary>Keeps a dead next hop from stalling a test for the default 30 s.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Postern:Delivery:MaxActiveMessages; null keeps Postern's default out of the file.</summary>
    public int? MaxActiveMessages { get; init; }

    /// <summary>Postern:Delivery:MaxActiveMessagesPerTenant; null keeps Postern's default out of the file.</summary>
    public int? MaxActiveMessagesPerTenant { get; init; }

    /// <summary>Postern:Delivery:GreetingTimeout; null keeps Postern's default (5 minutes) out of the file.</summary>
    public TimeSpan? GreetingTimeout { get; init; }

    /// <summary>Postern:Delivery:DataTimeout; null keeps Postern's default (10 minutes) out of the file.</summary>
    public TimeSpan? DataTimeout { get; init; }

    /// <summary>Postern:Delivery:MaxConnectionsPerDestination; null keeps Postern's default out of the file.</summary>
    public int? MaxConnectionsPerDestination { get; init; }

    /// <summary>Postern:Delivery:BindAddresses; empty keeps the setting out of the file.</summary>
    public IReadOnlyList<string> BindAddresses { get; init; } = [];

    /// <summary>Loopback DNS servers (ADDRESS:PORT); empty keeps the setting out of the file.</summary>
    public IReadOnlyList<string> DnsServers { get; init; } = [];

    /// <summary>Postern:Http:EndPoint's port (/metrics, /healthz): a free one, so servers of parallel tests never share 8080.</summary>
    public int HttpPort { get; init; } = FreePort.Next();

    /// <summary>http://127.0.0.1:PORT/ of the node's HTTP endpoint.</summary>
    public Uri HttpBase => new($"http://127.0.0.1:{HttpPort}/");

    /// <summary>More settings of section "Postern" (e.g. Regions), merged in as they are.</summary>
    public JsonObject? Extra { get; init; }

    /// <summary>The listener most tests talk to.</summary>
    public PosternListener First => Listeners[0];

    public PosternListener Listener(string name) => Listeners.Single(l => l.Name == name);

    /// <summary>A server with one M365 listener (STARTTLS required) and one plain listener for peers without TLS.</summary>
    public static PosternConfig WithPlainListener(bool deliveryRequireTls = false, int mxPort = 25, IReadOnlyList<string>? dnsServers = null) => new()
    {
        Listeners = [new("m365", FreePort.Next(), RequireTls: true), new("plain", FreePort.Next(), RequireTls: false)],
        DeliveryRequireTls = deliveryRequireTls,
        MxPort = mxPort,
        DnsServers = dnsServers ?? [],
    };

    public string ToJson()
    {
        static string Span(TimeSpan t) => t.ToString("c");
        var delivery = new JsonObject
        {
            ["RequireTls"] = DeliveryRequireTls,
            ["ValidateServerCertificate"] = ValidateServerCertificate,
            ["RetryDelays"] = new JsonArray(RetryDelays.Select(d => (JsonNode)Span(d)).ToArray()),
            ["MaxAge"] = Span(MaxAge),
            ["MxPort"] = MxPort,
            ["ConnectTimeout"] = Span(ConnectTimeout),
        };
        if (MaxConnectionsPerDestination is { } max)
            delivery["MaxConnectionsPerDestination"] = max;
        if (MaxActiveMessages is { } active)
            delivery["MaxActiveMessages"] = active;
        if (MaxActiveMessagesPerTenant is { } perTenant)
            delivery["MaxActiveMessagesPerTenant"] = perTenant;
        if (GreetingTimeout is { } greeting)
            delivery["GreetingTimeout"] = Span(greeting);
        if (DataTimeout is { } data)
            delivery["DataTimeout"] = Span(data);
        if (BindAddresses.Count > 0)
            delivery["BindAddresses"] = new JsonArray(BindAddresses.Select(a => (JsonNode)a).ToArray());
        var postern = new JsonObject
        {
            ["HostName"] = HostName,
            ["Listeners"] = new JsonArray(Listeners.Select(l => (JsonNode)new JsonObject
            {
                ["Name"] = l.Name,
                ["EndPoint"] = l.EndPoint,
                ["RequireTls"] = l.RequireTls,
                ["Handoff"] = l.Handoff,
                ["AllowedClientNetworks"] = new JsonArray(l.AllowedClientNetworks.Select(n => (JsonNode)n).ToArray()),
            }).ToArray()),
            ["Delivery"] = delivery,
            ["Http"] = new JsonObject { ["EndPoint"] = $"127.0.0.1:{HttpPort}" },
        };
        // DNS never leaves loopback in tests: without a test DNS server, a closed loopback port stands in
        // for the system resolver, and Postern's own SPF/DKIM/DMARC checks (which need DNS) are off.
        var dns = DnsServers.Count > 0 ? DnsServers : ["127.0.0.1:1"];
        postern["Dns"] = new JsonObject { ["Servers"] = new JsonArray(dns.Select(s => (JsonNode)s).ToArray()) };
        postern["Scanning"] = new JsonObject { ["Authentication"] = DnsServers.Count > 0 };
        foreach (var (name, value) in Extra ?? [])
            postern[name] = value?.DeepClone();
        return new JsonObject { ["Postern"] = postern }.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
