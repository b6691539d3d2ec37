using System.Net;
using Microsoft.Extensions.Logging;
using Postern.Core.Certificates;
using Postern.Core.Configuration;
using Postern.Core.Delivery;
using Postern.Core.Relay;
using Postern.Core.Scanning;
using Postern.Core.Spool;
using Postern.Core.Storage;
using Postern.Core.Trace;
using Postern.Smtp;

namespace Postern.Hosting;

/// <summary>
/// One running relay node: SMTP in → relay handler → spool → delivery, plus the watchers that
/// bring configuration changes and queue requests from the CLI into the running process.
/// </summary>
public sealed class PosternNode : IAsyncDisposable
{
    private readonly PosternOptions _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _background = new();
    private PosternDatabase? _database;
    private TraceWriter? _trace;
    private MessageSpool? _spool;
    private SmtpDeliveryAgent? _agent;
    private DeliveryScheduler? _scheduler;
    private DispatchFinisher? _finisher;
    private SmtpServer? _server;

    public PosternNode(PosternOptions options, ILoggerFactory loggerFactory)
    {
        _options = options;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<PosternNode>();
    }

    public IReadOnlyList<IPEndPoint> EndPoints => _server?.BoundEndPoints ?? [];

    /// <summary>Every configured listener is bound and accepting.</summary>
    public bool Listening => _server is not null && _server.BoundEndPoints.Count == _options.Listeners.Count;

    public int ActiveSessions => _server?.ActiveSessions ?? 0;

    public PosternDatabase? Database => _database;

    /// <summary>The regions' certificates the listeners present (null before start).</summary>
    public RegionCertificates? RegionCertificates { get; private set; }

    /// <summary>Tenant id → name in the configuration now loaded.</summary>
    public Func<Guid, string?> TenantName { get; private set; } = _ => null;

    public string SpoolDirectory => Path.Combine(_options.DataDir, "spool");

    /// <summary>The enabled network engines (clamd, Rspamd) and how to ask each whether it answers.</summary>
    public IReadOnlyList<(string Engine, Func<CancellationToken, Task> Ping)> EngineProbes { get; private set; } = [];

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _database = new PosternDatabase(_options.DataDir);
        var store = new TenantStore(_database);
        var routing = new RoutingTableSource(store, _loggerFactory.CreateLogger<RoutingTableSource>());
        routing.Load();
        Core.Telemetry.PosternMetrics.TenantLabel = _options.Metrics.TenantLabel;
        Core.Telemetry.PosternMetrics.TenantName = id => routing.Current.FindTenant(id)?.Name;
        var certificates = new RegionCertificates(_options, _loggerFactory.CreateLogger<RegionCertificates>());
        RegionCertificates = certificates;
        TenantName = id => routing.Current.FindTenant(id)?.Name;
        _trace = new TraceWriter(_database, _loggerFactory.CreateLogger<TraceWriter>());
        _spool = new MessageSpool(Path.Combine(_options.DataDir, "spool"), _loggerFactory.CreateLogger<MessageSpool>());
        var recovered = _spool.Recover();
        _spool.Start();
        var dns = new Core.Authentication.DnsClientResolver(_options.Dns);
        var mx = new MxResolver(dns);
        _agent = new SmtpDeliveryAgent(_options, mx, _loggerFactory.CreateLogger<SmtpDeliveryAgent>());
        var signer = new OutgoingSigner(_options, Core.Certificates.ArcKey.Load(_options, _logger), dns, new SigningKeyStore(_database),
            _loggerFactory.CreateLogger<OutgoingSigner>());
        routing.Reloaded += _ => signer.ReloadKeys();
        var tenantCertificates = new TenantCertificates(new TenantCertificateStore(_database), _options.ProductDomain, _loggerFactory.CreateLogger<TenantCertificates>());
        // A certificate replaced by the CLI bumps the generation: the next delivery loads it.
        routing.Reloaded += _ => tenantCertificates.Forget();
        _scheduler = new DeliveryScheduler(_options, _spool, _agent, mx, routing, certificates, _trace,
            _loggerFactory.CreateLogger<DeliveryScheduler>(), signer, tenantCertificates);
        var quarantine = new Core.Quarantine.QuarantineStore(_database, _options.DataDir);
        var releases = new QuarantineReleaseWatcher(quarantine, _spool, _scheduler, _trace, _loggerFactory.CreateLogger<QuarantineReleaseWatcher>());
        // Dispatch records are split into their parts by the finisher; everything else is delivered.
        var records = recovered.Where(m => m.Envelope.Dispatch is not null).ToList();
        var deliverable = recovered.Where(m => m.Envelope.Dispatch is null).ToList();
        var tenantLimits = new TenantLimits(_options.TenantLimits, _spool);
        foreach (var message in recovered)
            tenantLimits.Stored(message);
        _finisher = new DispatchFinisher(new CleanupStage(_options), _spool, _scheduler, quarantine, tenantLimits, _trace, _loggerFactory.CreateLogger<DispatchFinisher>());
        // Before delivery starts: a release a crash interrupted is settled by whether its copy is among the recovered.
        releases.RecoverInterruptedReleases(deliverable);
        _scheduler.Start(deliverable);
        _finisher.Recover(records, recovered.Select(m => m.QueueId).ToHashSet(StringComparer.Ordinal));
        _finisher.Run();

        var handler = new RelayTransactionHandler(_options, routing, _spool, _scheduler, CreateScanner(dns, signer.AuthservId), _finisher, tenantLimits, _trace,
            _loggerFactory.CreateLogger<RelayTransactionHandler>());
        var listeners = _options.Listeners.Select(l => new SmtpListenerOptions
        {
            Name = l.Name,
            EndPoint = IPEndPoint.Parse(l.EndPoint),
            RequireTls = l.RequireTls,
            Handoff = l.Handoff,
            AllowedClientNetworks = l.AllowedClientNetworks.Select(n => IPNetwork.Parse(n)).ToArray(),
            HostName = _options.HostName,
            Certificate = certificates.For(_options.Region),
        }).ToArray();
        var limits = new SmtpLimits
        {
            MaxMessageSize = _options.Smtp.MaxMessageSize,
            // One limit: the server refuses what the relay could not read as a header section.
            MaxHeaderSectionSize = HeaderSection.MaxReceivedLength,
            MaxRecipients = _options.Smtp.MaxRecipients,
            MaxConnectionsPerIp = _options.Smtp.MaxConnectionsPerIp,
            MaxConnections = _options.Smtp.MaxConnections,
            IdleTimeout = _options.Smtp.IdleTimeout,
            SessionTimeout = _options.Smtp.SessionTimeout,
            MaxCommandLineLength = _options.Smtp.MaxCommandLineLength,
            MaxTextLineLength = _options.Smtp.MaxTextLineLength,
            MaxCommandsWithoutProgress = _options.Smtp.MaxCommandsWithoutProgress,
            MaxErrors = _options.Smtp.MaxErrors,
        };
        _server = new SmtpServer(listeners, limits, handler, _loggerFactory);
        await _server.StartAsync(cancellationToken).ConfigureAwait(false);

        _background.Add(routing.WatchAsync(TimeSpan.FromMilliseconds(500), _stopping.Token));
        _background.Add(new QueueRequestWatcher(_database, _scheduler, _loggerFactory.CreateLogger<QueueRequestWatcher>())
            .WatchAsync(TimeSpan.FromMilliseconds(500), _stopping.Token));
        _background.Add(releases.WatchAsync(TimeSpan.FromMilliseconds(500), _stopping.Token));
        for (var i = 0; i < listeners.Length; i++)
            _logger.LogInformation("Listening on {EndPoint} ({Listener}{Tls}{Handoff})", _server.BoundEndPoints[i], listeners[i].Name,
                listeners[i].RequireTls ? ", STARTTLS required" : "", listeners[i].Handoff ? ", handoff" : "");
        _logger.LogInformation("Postern ready: data in {DataDir}, region {Region}, {Recovered} messages recovered from the spool",
            Path.GetFullPath(_options.DataDir), _options.Region, recovered.Count);
    }

    /// <summary>The engines the configuration turns on; the network engines first, so their calls overlap the built-in work.</summary>
    private IMessageScanner CreateScanner(Core.Authentication.IDnsResolver dns, string authservId)
    {
        var scanning = _options.Scanning;
        if (!scanning.Enabled)
            return new PassThroughScanner();
        var engines = new List<IScanEngine>();
        var probes = new List<(string, Func<CancellationToken, Task>)>();
        if (scanning.ClamAv.Enabled)
        {
            var clamav = new Core.Scanning.Engines.ClamAvEngine(scanning.ClamAv, _loggerFactory.CreateLogger<Core.Scanning.Engines.ClamAvEngine>());
            engines.Add(clamav);
            probes.Add((clamav.Name, ct => clamav.Client.PingAsync(ct)));
        }
        if (scanning.Rspamd.Enabled)
        {
            var rspamd = new Core.Scanning.Engines.RspamdEngine(scanning.Rspamd, _loggerFactory.CreateLogger<Core.Scanning.Engines.RspamdEngine>());
            engines.Add(rspamd);
            probes.Add((rspamd.Name, ct => rspamd.Client.PingAsync(ct)));
        }
        EngineProbes = probes;
        if (scanning.Authentication)
            engines.Add(new AuthenticationEngine(new Core.Authentication.AuthenticationChecker(dns), authservId));
        if (scanning.Attachments.Enabled)
            engines.Add(new Core.Scanning.Engines.AttachmentTypeEngine(scanning.Attachments));
        if (scanning.Urls.Enabled)
            engines.Add(new Core.Scanning.Engines.UrlEngine(scanning.Urls));
        if (scanning.Impersonation.Enabled)
            engines.Add(new Core.Scanning.Engines.ImpersonationEngine(scanning.Impersonation));
        Core.Telemetry.PosternMetrics.Initialize(engines.Select(e => e.Name));
        _logger.LogInformation("Scanning with {Engines}", engines.Count == 0 ? "no engines" : string.Join(", ", engines.Select(e => e.Name)));
        return new ScanningPipeline(engines, scanning.EngineTimeout, _loggerFactory.CreateLogger<ScanningPipeline>());
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_server is not null)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await _server.StopAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
            await _server.DisposeAsync().ConfigureAwait(false);
        }
        try
        {
            await Task.WhenAll(_background).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        if (_finisher is not null)
            await _finisher.DisposeAsync().ConfigureAwait(false);
        if (_scheduler is not null)
            await _scheduler.DisposeAsync().ConfigureAwait(false);
        if (_agent is not null)
            await _agent.DisposeAsync().ConfigureAwait(false);
        if (_spool is not null)
            await _spool.DisposeAsync().ConfigureAwait(false);
        if (_trace is not null)
            await _trace.DisposeAsync().ConfigureAwait(false);
        _stopping.Dispose();
    }
}
