using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Logging.Abstractions;
using Postern.Smtp;

namespace Postern.ExoEmulator.MailFlow;

/// <summary>
/// The mail side of the emulated Exchange Online: one front door for every tenant, attribution, each tenant's
/// transport rules (<see cref="TransportRuleEngine"/>), delivery to mailboxes (a Maildir each), to other emulated
/// tenants, to the Internet (the "Internet" Maildir) and through outbound connectors to smart hosts, ARC-sealed.
/// Built from Microsoft's documentation; see docs/m365.md ("The emulator's mail flow").
/// </summary>
public sealed class ExoTransport : IAsyncDisposable
{
    private readonly ExoEmulator _emulator;
    private readonly MailFlowOptions _options;
    private readonly SmtpServer _frontDoor;
    private readonly SmtpServer? _internet;
    private readonly ConnectorDelivery _connectors;
    private readonly CancellationTokenSource _stopping = new();
    private long _sequence;

    private ExoTransport(ExoEmulator emulator, MailFlowOptions options, X509Certificate2 certificate)
    {
        _emulator = emulator;
        _options = options;
        Certificate = certificate;
        Mailboxes = new Maildir(options.MaildirRoot);
        _connectors = new ConnectorDelivery(this, options, Log, certificate);
        var limits = new SmtpLimits { MaxMessageSize = options.MaxMessageSize, MaxRecipients = options.MaxRecipients };
        _frontDoor = new SmtpServer([new SmtpListenerOptions
        {
            Name = "exo-front-door",
            EndPoint = options.FrontDoor,
            RequireTls = false,
            Certificate = certificate,
            RequestClientCertificate = true,
            HostName = "emulator.mail.protection.outlook.com",
        }], limits, new FrontDoorHandler(this, Log), NullLoggerFactory.Instance);
        if (options.Internet is { } internet)
            _internet = new SmtpServer([new SmtpListenerOptions
            {
                Name = "internet",
                EndPoint = internet,
                RequireTls = false,
                Certificate = certificate,
                RequestClientCertificate = false,
                HostName = "mx.internet.example",
            }], limits, new InternetHandler(Mailboxes, Log), NullLoggerFactory.Instance);
    }

    public MailFlowLog Log { get; } = new();

    /// <summary>The options it runs with (TrustedCertificates may be added to once the smart hosts have their certificates).</summary>
    public MailFlowOptions Options => _options;

    public Maildir Mailboxes { get; }

    public ExoArcSealer Arc { get; } = new();

    /// <summary>The certificate of the front door, also the client certificate Exchange Online presents to smart hosts.</summary>
    public X509Certificate2 Certificate { get; }

    public IPEndPoint FrontDoorEndPoint => _frontDoor.BoundEndPoints[0];

    public IPEndPoint? InternetEndPoint => _internet?.BoundEndPoints[0];

    public static async Task<ExoTransport> StartAsync(ExoEmulator emulator, MailFlowOptions options, CancellationToken cancellationToken = default)
    {
        var transport = new ExoTransport(emulator, options, CreateCertificate());
        await transport._frontDoor.StartAsync(cancellationToken);
        if (transport._internet is not null)
            await transport._internet.StartAsync(cancellationToken);
        emulator.Transport = transport;
        return transport;
    }

    /// <summary>A mailbox user of the tenant sends a message (as from Outlook: authenticated, inside the organisation).</summary>
    public string Submit(EmulatedTenant tenant, string from, IReadOnlyList<string> recipients, byte[] message)
    {
        var view = tenant.MailView();
        var domain = Domain(from);
        if (!view.Accepts(domain))
            throw new ArgumentException($"'{from}' is not in an accepted domain of {tenant.Organization}");
        var id = NextId();
        var mail = RawMail.Parse(message);
        mail.Prepend("Received", $"from {Slug(view)}.prod.outlook.com by {Slug(view)}.prod.outlook.com with Microsoft SMTP Server (emulated submission) id {id}; {Now()}");
        Log.Add(id, view.Name, "received", $"{MessageId(mail)} submitted by mailbox {from}");
        Process(view, id, from, recipients, mail, client: null, organization: true);
        return id;
    }

    internal IReadOnlyList<TenantMailView> TenantViews() => [.. _emulator.Tenants.Select(t => t.MailView())];

    internal string AcceptFromFrontDoor(SmtpSessionInfo session, SmtpTransaction transaction, FrontDoorTransaction state, byte[] content)
    {
        var id = NextId();
        var mail = RawMail.Parse(content);
        var client = session.RemoteEndPoint.Address;
        var certificate = session.ClientCertificate is { } c ? $", certificate {c.GetNameInfo(X509NameType.SimpleName, false)}" : ", no certificate";
        var from = transaction.From.Address;
        var recipients = transaction.Recipients.Select(r => r.Address).ToArray();
        if (state.OnPremises is { } onPremises)
        {
            mail.Prepend("Received", FrontDoorReceived(session, onPremises.Tenant, id));
            Log.Add(id, onPremises.Tenant.Name, "received",
                $"{MessageId(mail)} on OnPremises connector '{onPremises.Connector.Name}', attributed by {onPremises.How}; from {client}{certificate}");
            Process(onPremises.Tenant, id, from, recipients, mail, client, organization: true);
            return id;
        }
        foreach (var group in recipients.GroupBy(r => state.Owners[r]))
        {
            var copy = mail.Copy();
            copy.Prepend("Received", FrontDoorReceived(session, group.Key, id));
            Log.Add(id, group.Key.Name, "received", $"{MessageId(mail)} from the Internet ({client}{certificate}) for {string.Join(", ", group)}");
            Process(group.Key, id, from, [.. group], copy, client, organization: false);
        }
        return id;
    }

    /// <summary>The tenant's transport: rules, then where each recipient's copy goes.</summary>
    private void Process(TenantMailView tenant, string id, string from, IReadOnlyList<string> recipients, RawMail mail, IPAddress? client, bool organization,
        DateTimeOffset? firstDeferredAt = null)
    {
        var original = mail.Copy();
        var item = new MailItem
        {
            MailFrom = from,
            Recipients = recipients,
            Headers = mail.ForRules(),
            ClientAddress = client,
            Authenticated = organization,
            Scl = client is not null && ConnectorMatch.Address(tenant.IpAllowList, client) ? -1 : null,
        };
        var run = tenant.Tenant.RunTransportRules(item);
        mail.TakeFromRules(item.Headers);
        if (item.Scl is { } scl)
        {
            mail.Headers.RemoveAll(h => h.Name.Equals("X-MS-Exchange-Organization-SCL", StringComparison.OrdinalIgnoreCase));
            mail.Prepend("X-MS-Exchange-Organization-SCL", scl.ToString(CultureInfo.InvariantCulture));
        }
        Log.Add(id, tenant.Name, "rules", run.Applied.Count == 0 ? "none applied" : string.Join(", ", run.Applied.Select(r => $"'{r}'")));
        if (run.Connector is { } connectorName)
        {
            var connector = tenant.OutboundConnector(connectorName);
            if (connector is not null && connector.Bool("Enabled") != false)
            {
                Arc.Seal(mail, from);
                _connectors.Enqueue(new ConnectorJob(tenant, connector, id, from, recipients, mail, run.RequireTls));
                return;
            }
            // The rule cannot be carried out. RuleErrorAction decides: Defer keeps the message and runs the rules
            // again later; Ignore (the default) delivers it as if the rule had not routed it.
            var error = $"the outbound connector '{connectorName}' a rule routes to does not exist or is disabled";
            if (run.ErrorAction.Equals("Defer", StringComparison.OrdinalIgnoreCase))
            {
                Defer(tenant, id, from, recipients, original, client, organization, error, firstDeferredAt ?? DateTimeOffset.UtcNow);
                return;
            }
            Log.Add(id, tenant.Name, "rule error", error + "; RuleErrorAction Ignore: delivered without it");
        }
        var external = new List<string>();
        foreach (var recipient in recipients)
        {
            if (tenant.Accepts(Domain(recipient)))
                DeliverToMailbox(tenant, id, from, recipient, mail);
            else
                external.Add(recipient);
        }
        if (external.Count == 0)
            return;
        if (!organization)
        {
            Log.Add(id, tenant.Name, "dropped", $"not the organisation's mail, so not relayed to {string.Join(", ", external)}");
            return;
        }
        foreach (var group in external.GroupBy(r => RouteFor(tenant, Domain(r))))
        {
            var (connector, other) = group.Key;
            if (connector is not null)
            {
                var copy = mail.Copy();
                Arc.Seal(copy, from);
                _connectors.Enqueue(new ConnectorJob(tenant, connector, id, from, [.. group], copy, false));
            }
            else if (other is not null)
            {
                // Another tenant of the service: its mail arrives there as Internet mail, from the service's own address.
                var copy = mail.Copy();
                var address = _options.EgressAddress ?? IPAddress.Loopback;
                copy.Prepend("Received", $"from {Slug(tenant)}.outbound.protection.outlook.com ({address}) by {Slug(other)}.mail.protection.outlook.com with Microsoft SMTP Server id {id}; {Now()}");
                Log.Add(id, other.Name, "received", $"{MessageId(copy)} from tenant {tenant.Name} for {string.Join(", ", group)}");
                Process(other, id, from, [.. group], copy, address, organization: false);
            }
            else
            {
                var copy = mail.Copy();
                copy.Prepend("X-Envelope-To", string.Join(", ", group));
                copy.Prepend("Return-Path", $"<{from}>");
                Mailboxes.Deliver(Maildir.Internet, copy.ToBytes());
                Log.Add(id, tenant.Name, "internet", $"sent to the Internet for {string.Join(", ", group)}");
            }
        }
    }

    /// <summary>A message a rule could not be carried out for, kept and run through the (current) rules again later.</summary>
    private void Defer(TenantMailView tenant, string id, string from, IReadOnlyList<string> recipients, RawMail mail, IPAddress? client,
        bool organization, string error, DateTimeOffset since)
    {
        var delay = _options.RetryDelays[0];
        if (DateTimeOffset.UtcNow + delay - since > _options.MaxAge)
        {
            var expired = $"550 4.4.7 QUEUE.Expired; message expired (last error: {error})";
            Log.Add(id, tenant.Name, "ndr", expired);
            ReturnToSender(tenant, id, from, recipients, mail, expired);
            return;
        }
        Log.Add(id, tenant.Name, "deferred", $"{error}; RuleErrorAction Defer: the rules run again in {delay.TotalSeconds:0.#} s");
        _ = Task.Delay(delay, _stopping.Token).ContinueWith(t =>
        {
            if (!t.IsCanceled)
                Process(tenant.Tenant.MailView(), id, from, recipients, mail.Copy(), client, organization, since);
        }, TaskScheduler.Default);
    }

    /// <summary>Mail to another domain: a connector for it that is not rule-scoped, another emulated tenant, or the Internet.</summary>
    private (ExoRecord? Connector, TenantMailView? Tenant) RouteFor(TenantMailView tenant, string domain)
    {
        var connector = tenant.Outbound.FirstOrDefault(c => c.Bool("Enabled") != false && c.Bool("IsTransportRuleScoped") != true
            && ConnectorMatch.SenderDomain(c.List("RecipientDomains"), domain));
        if (connector is not null)
            return (connector, null);
        var other = TenantViews().FirstOrDefault(t => t.Tenant != tenant.Tenant && t.Accepts(domain));
        return (null, other);
    }

    private void DeliverToMailbox(TenantMailView tenant, string id, string from, string recipient, RawMail mail)
    {
        var copy = mail.Copy();
        copy.Prepend("Delivered-To", recipient);
        copy.Prepend("Return-Path", $"<{from}>");
        var path = Mailboxes.Deliver(recipient, copy.ToBytes());
        Log.Add(id, tenant.Name, "delivered", $"to mailbox {recipient} ({Path.GetFileName(path)})");
    }

    /// <summary>A non-delivery report to the sender: in the tenant's mailbox when the sender is one of its users, else to the Internet.</summary>
    internal void ReturnToSender(TenantMailView tenant, string id, string from, IReadOnlyList<string> recipients, RawMail mail, string reply)
    {
        if (from.Length == 0)
            return; // Never an NDR for an NDR.
        var text = $"""
            From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@{tenant.Tenant.Organization}>
            To: <{from}>
            Subject: Undeliverable: {mail.First("Subject")}
            Date: {Now()}
            Message-ID: <ndr-{id}@emulator.mail.protection.outlook.com>
            MIME-Version: 1.0
            Content-Type: text/plain; charset=utf-8
            Auto-Submitted: auto-replied

            Delivery has failed to these recipients or groups: {string.Join(", ", recipients)}

            Remote server returned '{reply}'

            Original message ID: {mail.First("Message-ID")}

            """.ReplaceLineEndings("\r\n");
        var ndr = RawMail.Parse(System.Text.Encoding.UTF8.GetBytes(text));
        if (tenant.Accepts(Domain(from)))
            DeliverToMailbox(tenant, "ndr-" + id, "", from, ndr);
        else
        {
            ndr.Prepend("X-Envelope-To", from);
            ndr.Prepend("Return-Path", "<>");
            Mailboxes.Deliver(Maildir.Internet, ndr.ToBytes());
            Log.Add("ndr-" + id, tenant.Name, "internet", $"NDR to {from}");
        }
    }

    private static string FrontDoorReceived(SmtpSessionInfo session, TenantMailView tenant, string id)
    {
        var helo = session.HeloName ?? "unknown";
        var tls = session.IsTls ? $"version={session.TlsProtocol}, cipher={session.TlsCipher}" : "no TLS";
        return $"from {helo} ({helo} [{session.RemoteEndPoint.Address}]) by {Slug(tenant)}.mail.protection.outlook.com (10.0.0.1) with Microsoft SMTP Server ({tls}) id {id}; {Now()}";
    }

    /// <summary>The tenant's MX host label: contoso-com for contoso.com (its first accepted domain other than the initial one).</summary>
    private static string Slug(TenantMailView tenant) =>
        (tenant.AcceptedDomains.Where(d => !d.EndsWith(".onmicrosoft.com", StringComparison.Ordinal)).Order(StringComparer.Ordinal).FirstOrDefault()
            ?? tenant.Tenant.Organization).Replace('.', '-');

    private static string MessageId(RawMail mail) => mail.First("Message-ID") ?? "(no Message-ID)";

    private static string Domain(string address) => address[(address.LastIndexOf('@') + 1)..].ToLowerInvariant();

    private static string Now() => DateTimeOffset.UtcNow.ToString("ddd, dd MMM yyyy HH:mm:ss +0000", CultureInfo.InvariantCulture);

    private string NextId() => $"EMU{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds():X}{Interlocked.Increment(ref _sequence):D4}";

    private static X509Certificate2 CreateCertificate()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=mail.protection.outlook.com", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName("mail.protection.outlook.com");
        names.AddDnsName("*.mail.protection.outlook.com");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], false));
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddYears(1));
        return X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        await _frontDoor.DisposeAsync();
        if (_internet is not null)
            await _internet.DisposeAsync();
        await _connectors.StopAsync();
    }
}
