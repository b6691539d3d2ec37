using System.Net;

namespace Postern.Core.Configuration;

/// <summary>Settings of one Postern node (configuration section "Postern").</summary>
public sealed class PosternOptions
{
    public const string Section = "Postern";

    /// <summary>Where the database, spool and certificates live.</summary>
    public string DataDir { get; set; } = "postern-data";

    /// <summary>Name in the greeting, Received headers and DSNs.</summary>
    public string HostName { get; set; } = "postern.local";

    /// <summary>The region this node serves: its certificate is the one offered to Microsoft 365.</summary>
    public string Region { get; set; } = "us";

    /// <summary>Product domain; region host names and certificate subjects derive from it.</summary>
    public string ProductDomain { get; set; } = "postern.example";

    /// <summary>Header prefix; the key and loop headers are {prefix}Key and {prefix}Loop.</summary>
    public string HeaderPrefix { get; set; } = "X-Postern-";

    public List<ListenerOptions> Listeners { get; set; } = [];

    public SmtpLimitOptions Smtp { get; set; } = new();

    public DeliveryOptions Delivery { get; set; } = new();

    public TenantLimitOptions TenantLimits { get; set; } = new();

    public DnsOptions Dns { get; set; } = new();

    /// <summary>Certificates per region (PFX); a self-signed one is made on first start where none is given.</summary>
    public Dictionary<string, CertificateOptions> Certificates { get; set; } = new();

    /// <summary>How long a rotated relay key keeps working, so the Exchange Online rule can be updated.</summary>
    public TimeSpan RelayKeyGracePeriod { get; set; } = TimeSpan.FromHours(24);

    public SigningOptions Signing { get; set; } = new();

    public ScanningOptions Scanning { get; set; } = new();

    public HttpOptions Http { get; set; } = new();

    public MetricsOptions Metrics { get; set; } = new();

    public HealthOptions Health { get; set; } = new();

    /// <summary>Console log format: text (one line per entry) or json (for log shippers).</summary>
    public string LogFormat { get; set; } = "text";

    /// <summary>Least severe log level written.</summary>
    public Microsoft.Extensions.Logging.LogLevel LogLevel { get; set; } = Microsoft.Extensions.Logging.LogLevel.Information;

    /// <summary>More Received headers than this is a loop.</summary>
    public int MaxReceivedHeaders { get; set; } = 30;

    /// <summary>ADDRESS/PREFIX with no host bits set: "40.92.0.1/15" is refused as the typo it usually is, as Postfix warns of it.</summary>
    private static bool IsNetwork(string text) =>
        text.Split('/') is [var address, _] && IPNetwork.TryParse(text, out var network) && IPAddress.TryParse(address, out var parsed)
        && network.BaseAddress.Equals(parsed);

    /// <summary>Fills list settings left empty by the configuration (the binder appends to lists, so defaults go in after binding).</summary>
    public PosternOptions ApplyDefaults()
    {
        if (Listeners.Count == 0)
            Listeners.Add(new ListenerOptions());
        if (Delivery.RetryDelays.Count == 0)
            Delivery.RetryDelays.AddRange(DeliveryOptions.DefaultRetryDelays);
        return this;
    }

    /// <summary>Checks that stop start-up with one line naming the setting.</summary>
    public IEnumerable<string> Validate()
    {
        if (string.IsNullOrWhiteSpace(HostName))
            yield return "Postern:HostName must not be empty";
        if (!Tenants.Region.IsKnown(Region))
            yield return $"Postern:Region '{Region}' is not one of au, eu, us";
        if (Listeners.Count == 0)
            yield return "Postern:Listeners must name at least one listener";
        for (var i = 0; i < Listeners.Count; i++)
        {
            if (!IPEndPoint.TryParse(Listeners[i].EndPoint, out _))
                yield return $"Postern:Listeners:{i}:EndPoint '{Listeners[i].EndPoint}' is not ADDRESS:PORT";
            foreach (var network in Listeners[i].AllowedClientNetworks.Where(n => !IsNetwork(n)))
                yield return $"Postern:Listeners:{i}:AllowedClientNetworks '{network}' is not a network such as 40.92.0.0/15 or 2a01:111:f400::/48 (address/prefix, host bits zero)";
        }
        if (Delivery.RetryDelays.Count == 0 || Delivery.RetryDelays.Any(d => d <= TimeSpan.Zero))
            yield return "Postern:Delivery:RetryDelays must list positive delays";
        if (Delivery.MaxAge <= TimeSpan.Zero)
            yield return $"Postern:Delivery:MaxAge '{Delivery.MaxAge}' must be positive";
        for (var i = 0; i < Delivery.BindAddresses.Count; i++)
        {
            if (!System.Net.IPAddress.TryParse(Delivery.BindAddresses[i], out _) || Delivery.BindAddresses[i].Contains('/'))
                yield return $"Postern:Delivery:BindAddresses:{i} '{Delivery.BindAddresses[i]}' is not an IP address";
        }
        if (Delivery.BindAddressList.GroupBy(a => a.AddressFamily).Any(g => g.Count() > 1))
            yield return "Postern:Delivery:BindAddresses lists more than one address of a family (one IPv4 and one IPv6 at most)";
        if (Delivery.MaxConnectionsPerDestination < 1)
            yield return $"Postern:Delivery:MaxConnectionsPerDestination '{Delivery.MaxConnectionsPerDestination}' must be at least 1";
        if (Delivery.MaxActiveMessages < 1)
            yield return $"Postern:Delivery:MaxActiveMessages '{Delivery.MaxActiveMessages}' must be at least 1";
        if (Delivery.MaxActiveMessagesPerTenant < 1)
            yield return $"Postern:Delivery:MaxActiveMessagesPerTenant '{Delivery.MaxActiveMessagesPerTenant}' must be at least 1";
        foreach (var (name, timeout) in new[] { ("ConnectTimeout", Delivery.ConnectTimeout), ("GreetingTimeout", Delivery.GreetingTimeout),
                     ("CommandTimeout", Delivery.CommandTimeout), ("DataTimeout", Delivery.DataTimeout) })
        {
            if (timeout <= TimeSpan.Zero)
                yield return $"Postern:Delivery:{name} '{timeout}' must be positive";
        }
        foreach (var server in Dns.Servers)
        {
            if (!IPEndPoint.TryParse(server, out _) && !IPAddress.TryParse(server, out _))
                yield return $"Postern:Dns:Servers '{server}' is not ADDRESS[:PORT]";
        }
        if (TenantLimits.MaxConcurrentTransactions < 1)
            yield return $"Postern:TenantLimits:MaxConcurrentTransactions '{TenantLimits.MaxConcurrentTransactions}' must be at least 1";
        if (TenantLimits.MaxSpoolBytes < 1)
            yield return $"Postern:TenantLimits:MaxSpoolBytes '{TenantLimits.MaxSpoolBytes}' must be at least 1";
        foreach (var (name, value, minimum) in new[] { ("MaxRecipients", Smtp.MaxRecipients, 1), ("MaxConnectionsPerIp", Smtp.MaxConnectionsPerIp, 1),
                     ("MaxConnections", Smtp.MaxConnections, 1), ("MaxCommandLineLength", Smtp.MaxCommandLineLength, 512),
                     ("MaxTextLineLength", Smtp.MaxTextLineLength, 1000), ("MaxCommandsWithoutProgress", Smtp.MaxCommandsWithoutProgress, 1),
                     ("MaxErrors", Smtp.MaxErrors, 1) })
        {
            if (value < minimum)
                yield return $"Postern:Smtp:{name} '{value}' must be at least {minimum}";
        }
        if (Smtp.MaxMessageSize < 1024)
            yield return $"Postern:Smtp:MaxMessageSize '{Smtp.MaxMessageSize}' must be at least 1024";
        if (Smtp.IdleTimeout <= TimeSpan.Zero)
            yield return $"Postern:Smtp:IdleTimeout '{Smtp.IdleTimeout}' must be positive";
        if (Smtp.SessionTimeout <= TimeSpan.Zero)
            yield return $"Postern:Smtp:SessionTimeout '{Smtp.SessionTimeout}' must be positive";
        if (MaxReceivedHeaders < 1)
            yield return $"Postern:MaxReceivedHeaders '{MaxReceivedHeaders}' must be at least 1";
        // Tenants publish CNAMEs into this zone; a typo would have them point at a name nobody serves.
        if (Signing.DkimDelegationZone.Length > 0 && Tenants.DomainName.Normalize(Signing.DkimDelegationZone.TrimEnd('.')) is null)
            yield return $"Postern:Signing:DkimDelegationZone '{Signing.DkimDelegationZone}' is not a domain name";
        foreach (var problem in Scanning.Validate())
            yield return problem;
        if (!IPEndPoint.TryParse(Http.EndPoint, out var http) || http.Port == 0)
            yield return $"Postern:Http:EndPoint '{Http.EndPoint}' is not ADDRESS:PORT";
        if (Http.CertificatePath.Length > 0 && !File.Exists(Http.CertificatePath))
            yield return $"Postern:Http:CertificatePath '{Http.CertificatePath}' does not exist";
        if (Metrics.OtlpEndpoint.Length > 0 && !Uri.TryCreate(Metrics.OtlpEndpoint, UriKind.Absolute, out _))
            yield return $"Postern:Metrics:OtlpEndpoint '{Metrics.OtlpEndpoint}' is not an absolute URL";
        if (Health.MinFreeSpoolBytes < 0)
            yield return $"Postern:Health:MinFreeSpoolBytes '{Health.MinFreeSpoolBytes}' must not be negative";
        if (Health.MaxQueueAge <= TimeSpan.Zero)
            yield return $"Postern:Health:MaxQueueAge '{Health.MaxQueueAge}' must be positive";
        if (LogFormat is not ("text" or "json"))
            yield return $"Postern:LogFormat '{LogFormat}' is not text or json";
    }
}

/// <summary>The node's HTTP endpoint (Kestrel): /metrics and /healthz now, the portal and REST API later.</summary>
public sealed class HttpOptions
{
    /// <summary>ADDRESS:PORT; loopback by default, so nothing is exposed until the operator says so.</summary>
    public string EndPoint { get; set; } = "127.0.0.1:8080";

    /// <summary>A PFX for HTTPS; empty serves plain HTTP.</summary>
    public string CertificatePath { get; set; } = "";

    public string? CertificatePassword { get; set; }
}

/// <summary>What /metrics labels by.</summary>
public sealed class MetricsOptions
{
    /// <summary>Label message counters with the tenant's name; off for deployments with very many tenants.</summary>
    public bool TenantLabel { get; set; } = true;

    /// <summary>An OTLP endpoint (http://collector:4317) to export traces and metrics to as well; empty: none.</summary>
    public string OtlpEndpoint { get; set; } = "";
}

/// <summary>When /healthz/ready says the node should not take mail.</summary>
public sealed class HealthOptions
{
    /// <summary>Free space the spool's file system must keep.</summary>
    public long MinFreeSpoolBytes { get; set; } = 512L * 1024 * 1024;

    /// <summary>The oldest queued or deferred message may be this old before the node reports itself not ready.</summary>
    public TimeSpan MaxQueueAge { get; set; } = TimeSpan.FromHours(1);
}

public sealed class ListenerOptions
{
    public string Name { get; set; } = "m365";
    public string EndPoint { get; set; } = "127.0.0.1:2525";

    /// <summary>Refuse MAIL before STARTTLS (the Microsoft 365 connector always uses TLS).</summary>
    public bool RequireTls { get; set; } = true;

    /// <summary>Answer DATA only after the next hop accepted the message, so nothing rests only here.</summary>
    public bool Handoff { get; set; }

    /// <summary>
    /// CIDR networks (IPv4 and IPv6) allowed to connect; empty allows all. Others get <c>554 5.7.1</c> and are
    /// disconnected at connect. In production: Exchange Online's published ranges (docs/operations.md).
    /// </summary>
    public List<string> AllowedClientNetworks { get; set; } = [];
}

public sealed class SmtpLimitOptions
{
    public long MaxMessageSize { get; set; } = 150L * 1024 * 1024;
    public int MaxRecipients { get; set; } = 1000;
    public int MaxConnectionsPerIp { get; set; } = 200;
    public int MaxConnections { get; set; } = 5000;
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromMinutes(5);
    public TimeSpan SessionTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>Longest command line, CRLF included (RFC 5321 §4.5.3.1.4: 512).</summary>
    public int MaxCommandLineLength { get; set; } = 512;

    /// <summary>Longest line of message content, CRLF included (RFC 5321 §4.5.3.1.6: 1000).</summary>
    public int MaxTextLineLength { get; set; } = 1000;

    /// <summary>Commands in a row that move no transaction forward (NOOP, RSET, VRFY, …) before 421 4.7.0.</summary>
    public int MaxCommandsWithoutProgress { get; set; } = 100;

    /// <summary>Refused commands in one session before 421 4.7.0.</summary>
    public int MaxErrors { get; set; } = 20;
}

/// <summary>
/// What one tenant may use of this node, applied as soon as its relay key says whose message it is: every tenant arrives
/// from Exchange Online's addresses, so per-IP limits cannot tell them apart. Over a limit: 451 4.7.0, for that tenant only.
/// </summary>
public sealed class TenantLimitOptions
{
    /// <summary>Messages of one tenant in progress at the same moment, each from its header section (where the key names the tenant) until it is answered.</summary>
    public int MaxConcurrentTransactions { get; set; } = 100;

    /// <summary>Bytes of one tenant's messages in the spool, not yet delivered (a hung MTA's backlog stops growing here).</summary>
    public long MaxSpoolBytes { get; set; } = 2L * 1024 * 1024 * 1024;
}

public sealed class DeliveryOptions
{
    /// <summary>Refuse to deliver to a tenant's MTA without STARTTLS (Microsoft 365 connectors require TLS).</summary>
    public bool RequireTls { get; set; } = true;

    /// <summary>Check the next hop's certificate chain and name.</summary>
    public bool ValidateServerCertificate { get; set; } = true;

    /// <summary>Waits between attempts after a temporary failure; the last one repeats.</summary>
    /// <remarks>Empty until <see cref="PosternOptions.ApplyDefaults"/>: the configuration binder appends to lists.</remarks>
    public List<TimeSpan> RetryDelays { get; set; } = [];

    public static readonly IReadOnlyList<TimeSpan> DefaultRetryDelays =
        [TimeSpan.FromMinutes(1), TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(15), TimeSpan.FromMinutes(30), TimeSpan.FromHours(1)];

    /// <summary>After this long in the queue a message fails for good (bounce or trace).</summary>
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromDays(2);

    public int MaxConnectionsPerDestination { get; set; } = 20;

    /// <summary>
    /// The addresses delivery connections leave from, at most one IPv4 and one IPv6 (Postfix's smtp_bind_address and
    /// smtp_bind_address6): the ones Exchange Online's IP-based connectors and allow lists name. Empty: the system chooses.
    /// </summary>
    public List<string> BindAddresses { get; set; } = [];

    /// <summary><see cref="BindAddresses"/> parsed (valid once <see cref="PosternOptions.Validate"/> passed).</summary>
    public IReadOnlyList<System.Net.IPAddress> BindAddressList =>
        BindAddresses.Select(a => System.Net.IPAddress.TryParse(a, out var ip) ? ip : null).OfType<System.Net.IPAddress>().ToArray();

    /// <summary>Port used when delivering by MX (25 on the Internet; tests point it elsewhere).</summary>
    public int MxPort { get; set; } = 25;

    /// <summary>Cap on messages the queue manager holds in memory; the rest wait in the spool (Postfix's qmgr_message_active_limit).</summary>
    public int MaxActiveMessages { get; set; } = 20000;

    /// <summary>Cap on one tenant's share of <see cref="MaxActiveMessages"/>, so a tenant's backlog to a hung destination cannot fill memory for all.</summary>
    public int MaxActiveMessagesPerTenant { get; set; } = 5000;

    /// <summary>Until the TCP connection to a next hop is made (Postfix's smtp_connect_timeout).</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Until the next hop's greeting, and each reply to EHLO and STARTTLS (Postfix's smtp_helo_timeout).</summary>
    public TimeSpan GreetingTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Until the reply to MAIL FROM and to each RCPT TO (Postfix's smtp_mail_timeout, smtp_rcpt_timeout).</summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>From DATA (or BDAT) until the reply after the last byte of the message (Postfix's smtp_data_done_timeout).</summary>
    public TimeSpan DataTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How long a connection to a next hop is kept for reuse.</summary>
    public TimeSpan IdleConnectionTimeout { get; set; } = TimeSpan.FromSeconds(30);
}

public sealed class DnsOptions
{
    /// <summary>DNS servers (ADDRESS or ADDRESS:PORT); empty means the system resolver configuration.</summary>
    public List<string> Servers { get; set; } = [];
}

public sealed class CertificateOptions
{
    public string Path { get; set; } = "";
    public string? Password { get; set; }
}

/// <summary>ARC sealing of mail returned to Microsoft 365 and DKIM signing of outbound mail.</summary>
public sealed class SigningOptions
{
    /// <summary>The ARC signing domain (d=); its key is published at {ArcSelector}._domainkey.{ArcDomain}. Empty: arc.{ProductDomain}.</summary>
    public string ArcDomain { get; set; } = "";

    public string ArcSelector { get; set; } = "postern1";

    /// <summary>PEM private key for ARC; empty: one is made under DATA/keys on first start.</summary>
    public string ArcKeyPath { get; set; } = "";

    /// <summary>The zone tenants delegate DKIM selectors to with a CNAME. Empty: dkim.{ProductDomain}.</summary>
    public string DkimDelegationZone { get; set; } = "";

    public bool SealInbound { get; set; } = true;

    public bool SignOutbound { get; set; } = true;

    public string ResolveArcDomain(string productDomain) => ArcDomain.Length > 0 ? ArcDomain : "arc." + productDomain;

    public string ResolveDelegationZone(string productDomain) => DkimDelegationZone.Length > 0 ? DkimDelegationZone.TrimEnd('.') : "dkim." + productDomain;
}
