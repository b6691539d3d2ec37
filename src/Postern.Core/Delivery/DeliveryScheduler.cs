using Microsoft.Extensions.Logging;
using Postern.Core.Certificates;
using Postern.Core.Configuration;
using Postern.Core.Spool;
using Postern.Core.Storage;
using Postern.Core.Tenants;
using Postern.Core.Trace;

namespace Postern.Core.Delivery;

/// <summary>
/// The queue manager: splits each queued message into one job per destination (a tenant domain's MTAs, or an
/// outbound MX domain), delivers each destination's jobs within its own connection budget and round-robin
/// between tenants (<see cref="DestinationQueues{TJob}"/>), retries temporary failures on the configured
/// schedule, bounces or records permanent ones, and tells the queue store which recipients are finished.
/// </summary>
/// <remarks>
/// At most <see cref="DeliveryOptions.MaxActiveMessages"/> messages are held in memory, and at most
/// <see cref="DeliveryOptions.MaxActiveMessagesPerTenant"/> of one tenant; the rest, and every deferred message,
/// wait in the <see cref="IQueueStore"/> without their bodies and are claimed back when due.
/// </remarks>
public sealed class DeliveryScheduler : IAsyncDisposable
{
    private static readonly TimeSpan ClaimInterval = TimeSpan.FromMilliseconds(200);

    private readonly PosternOptions _options;
    private readonly IQueueStore _store;
    private readonly SmtpDeliveryAgent _agent;
    private readonly MxResolver _mx;
    private readonly RoutingTableSource _routing;
    private readonly RegionCertificates _certificates;
    private readonly TenantCertificates? _tenantCertificates;
    private readonly TraceWriter _trace;
    private readonly OutgoingSigner? _signer;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly DestinationQueues<DeliveryJob> _queues;
    private readonly object _gate = new();
    private readonly HashSet<Task> _settling = new();
    private readonly Dictionary<Guid, int> _activeByTenant = new();
    private int _active;
    private Task? _claimer;

    public DeliveryScheduler(PosternOptions options, IQueueStore store, SmtpDeliveryAgent agent, MxResolver mx, RoutingTableSource routing,
        RegionCertificates certificates, TraceWriter trace, ILogger<DeliveryScheduler> logger, OutgoingSigner? signer = null,
        TenantCertificates? tenantCertificates = null)
    {
        _signer = signer;
        _tenantCertificates = tenantCertificates;
        _options = options;
        _store = store;
        _agent = agent;
        _mx = mx;
        _routing = routing;
        _certificates = certificates;
        _trace = trace;
        _logger = logger;
        _queues = new DestinationQueues<DeliveryJob>(options.Delivery.MaxConnectionsPerDestination, RunJobAsync, _stopping.Token);
    }

    /// <summary>
    /// Mail handed back to the tenant's Exchange Online (inbound, and outbound when it leaves through Microsoft 365)
    /// carries the tenant's own certificate: Exchange Online attributes it to a tenant by that certificate's name.
    /// Connections are pooled per certificate, so one tenant's authenticated connection never carries another's mail.
    /// Mail Postern delivers to the Internet itself presents the region's certificate.
    /// </summary>
    private System.Security.Cryptography.X509Certificates.X509Certificate2 ClientCertificateFor(Tenant tenant, bool toTenant) =>
        _tenantCertificates is not null && (toTenant || tenant.Outbound == OutboundMode.ViaM365)
            ? _tenantCertificates.For(tenant)
            : _certificates.For(tenant.Region);

    /// <summary>Messages held in memory: queued for or in delivery.</summary>
    public int ActiveCount
    {
        get { lock (_gate) return _active; }
    }

    public void Start(IEnumerable<SpooledMessage> recovered)
    {
        foreach (var message in recovered)
            Enqueue(message);
        _claimer ??= Task.Run(ClaimDueAsync);
    }

    /// <summary>Delivers a newly spooled message as soon as its destinations have a free connection.</summary>
    public void Enqueue(SpooledMessage message)
    {
        lock (_gate)
        {
            var tenant = message.Envelope.TenantId;
            if (_active >= _options.Delivery.MaxActiveMessages || ActiveOf(tenant) >= _options.Delivery.MaxActiveMessagesPerTenant)
            {
                // The in-memory queue (or the tenant's share of it) is full: the message waits in the store until there is room.
                _store.Release(message, DateTimeOffset.UtcNow);
                return;
            }
            Hold(tenant, 1);
        }
        Dispatch(message);
    }

    /// <summary>Makes a deferred message (or all, with "*") due now and lifts destination suspensions; returns how many were moved.</summary>
    public int RetryNow(string queueId)
    {
        _queues.ResumeAll();
        var moved = _store.MakeDue(queueId);
        if (moved > 0)
            ClaimDue();
        return moved;
    }

    /// <summary>
    /// Delivers the given recipients of a message now, without queueing: used by handoff listeners,
    /// which answer the client only after the next hop did.
    /// </summary>
    public async Task<IReadOnlyList<(int Index, RecipientResult Result)>> DeliverNowAsync(Envelope envelope, Func<Stream> openMessage, CancellationToken cancellationToken)
    {
        var plan = Plan(envelope, Enumerable.Range(0, envelope.Recipients.Count).ToArray());
        var results = new List<(int, RecipientResult)>(plan.Refused);
        var groups = await Task.WhenAll(plan.Routes.Select(route => DeliverRouteAsync(envelope, openMessage, plan.Tenant!, route, cancellationToken))).ConfigureAwait(false);
        foreach (var group in groups)
            results.AddRange(group.Results);
        return results;
    }

    private async Task ClaimDueAsync()
    {
        using var timer = new PeriodicTimer(ClaimInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token).ConfigureAwait(false))
            {
                ClaimDue();
                _queues.Sweep(DateTimeOffset.UtcNow);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Takes due messages back from the store, as many as the in-memory queue has room for.</summary>
    private void ClaimDue()
    {
        IReadOnlyList<SpooledMessage> claimed;
        lock (_gate)
        {
            var room = _options.Delivery.MaxActiveMessages - _active;
            if (room <= 0)
                return;
            var taking = new Dictionary<Guid, int>();
            claimed = _store.Claim(DateTimeOffset.UtcNow, room, tenant =>
            {
                var more = taking.GetValueOrDefault(tenant);
                if (ActiveOf(tenant) + more >= _options.Delivery.MaxActiveMessagesPerTenant)
                    return false;
                taking[tenant] = more + 1;
                return true;
            });
            foreach (var message in claimed)
                Hold(message.Envelope.TenantId, 1);
        }
        foreach (var message in claimed)
            Dispatch(message);
    }

    /// <summary>One attempt at a message: a job per destination, settled when the last one is done.</summary>
    private void Dispatch(SpooledMessage message)
    {
        message.Attempts++;
        var pending = message.PendingRecipients;
        if (pending.Count == 0)
        {
            Leave(message);
            return;
        }
        var plan = Plan(message.Envelope, pending);
        var attempt = new MessageAttempt(message, plan.Routes.Count, plan.Refused);
        if (plan.Routes.Count == 0)
        {
            Track(SettleAsync(attempt));
            return;
        }
        var now = DateTimeOffset.UtcNow;
        foreach (var route in plan.Routes)
        {
            var job = new DeliveryJob(attempt, plan.Tenant!, route);
            if (!_queues.TryAdd(route.Destination, message.Envelope.TenantId, job, now, out var because))
                Track(JobDoneAsync(job, Suspended(job, because)));
        }
    }

    private async Task RunJobAsync(DeliveryJob job, CancellationToken cancellationToken)
    {
        var message = job.Attempt.Message;
        RouteResult result;
        try
        {
            result = await DeliverRouteAsync(message.Envelope, () => _store.OpenBody(message), job.Tenant, job.Route, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex)
        {
            _logger.LogError(ex, "{QueueId}: delivery to {Destination} failed unexpectedly; retrying later", message.QueueId, job.Route.Destination);
            result = new RouteResult(job.Route.Indexes.Select(i => (i, Deferred(message.Envelope, i, "internal error: " + ex.Message))).ToArray(), null);
        }
        if (result.Unreachable is { } because)
        {
            // Postfix's dead destination: what is queued behind this job would only wait for the same timeout.
            var until = DateTimeOffset.UtcNow + _options.Delivery.RetryDelays[0];
            foreach (var queued in _queues.Suspend(job.Route.Destination, until, because))
                Track(JobDoneAsync(queued, Suspended(queued, because)));
        }
        await JobDoneAsync(job, result.Results).ConfigureAwait(false);
    }

    private static (int, RecipientResult)[] Suspended(DeliveryJob job, string because) =>
        job.Route.Indexes.Select(i => (i, Deferred(job.Attempt.Message.Envelope, i, "delivery temporarily suspended: " + because))).ToArray();

    private static RecipientResult Deferred(Envelope envelope, int index, string reply) =>
        new(envelope.Recipients[index].Address, RecipientOutcome.Deferred, reply);

    private async Task JobDoneAsync(DeliveryJob job, IReadOnlyList<(int Index, RecipientResult Result)> results)
    {
        // Delivered recipients are finished at once: a crash while another destination still hangs must not send them twice.
        var delivered = results.Where(r => r.Result.Outcome == RecipientOutcome.Delivered).Select(r => r.Index).ToArray();
        if (delivered.Length > 0)
            _store.Finish(job.Attempt.Message, delivered);
        if (job.Attempt.Add(results))
            await SettleAsync(job.Attempt).ConfigureAwait(false);
    }

    /// <summary>After every destination of an attempt answered: bounce, finish, defer or record the final state.</summary>
    private async Task SettleAsync(MessageAttempt attempt)
    {
        var message = attempt.Message;
        try
        {
            await SettleCoreAsync(attempt).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            _logger.LogError(ex, "{QueueId}: delivery failed unexpectedly; retrying later", message.QueueId);
            Defer(message, "internal error: " + ex.Message);
        }
    }

    private async Task SettleCoreAsync(MessageAttempt attempt)
    {
        var message = attempt.Message;
        var envelope = message.Envelope;
        var results = attempt.Results;
        if (DateTimeOffset.UtcNow - envelope.ReceivedAt >= _options.Delivery.MaxAge)
        {
            results = results.Select(r => r.Result.Outcome == RecipientOutcome.Deferred
                ? (r.Index, r.Result with { Outcome = RecipientOutcome.Failed, Reply = $"expired after {_options.Delivery.MaxAge}: {r.Result.Reply}" })
                : r).ToArray();
        }

        var failed = results.Where(r => r.Result.Outcome == RecipientOutcome.Failed).ToArray();
        if (failed.Length > 0 && ShouldBounce(envelope, failed))
            await BounceAsync(message, failed.Select(f => f.Result).ToArray(), _stopping.Token).ConfigureAwait(false);
        _store.Finish(message, failed.Select(f => f.Index).ToArray());

        var deferred = results.Where(r => r.Result.Outcome == RecipientOutcome.Deferred).ToArray();
        if (deferred.Length > 0)
        {
            Defer(message, deferred[0].Result.Reply);
            return;
        }
        var finished = results.Count(r => r.Result.Outcome != RecipientOutcome.Deferred);
        var all = envelope.Recipients.Count;
        var state = failed.Length == 0 ? MessageStates.Delivered
            : failed.Length == results.Count && finished == all ? MessageStates.Failed : MessageStates.PartlyFailed;
        var reason = failed.Length == 0 ? results[^1].Result.Reply : failed[0].Result.Reply;
        _trace.Write(new MessageStateChanged(message.QueueId, DateTimeOffset.UtcNow, state, reason));
        Leave(message);
    }

    private void Defer(SpooledMessage message, string reason)
    {
        var delays = _options.Delivery.RetryDelays;
        var delay = delays[Math.Clamp(message.Attempts - 1, 0, delays.Count - 1)];
        var next = DateTimeOffset.UtcNow + delay;
        _store.Release(message, next);
        _trace.Write(new MessageStateChanged(message.QueueId, DateTimeOffset.UtcNow, MessageStates.Deferred, reason, next));
        Leave(message);
    }

    /// <summary>The message no longer takes room in memory (finished, or given back to the store).</summary>
    private void Leave(SpooledMessage message)
    {
        lock (_gate)
            Hold(message.Envelope.TenantId, -1);
    }

    /// <summary>Counts messages in memory, in all and per tenant; a tenant with none is forgotten. Called under the lock.</summary>
    private void Hold(Guid tenant, int change)
    {
        _active += change;
        var count = ActiveOf(tenant) + change;
        if (count > 0)
            _activeByTenant[tenant] = count;
        else
            _activeByTenant.Remove(tenant);
    }

    private int ActiveOf(Guid tenant) => _activeByTenant.GetValueOrDefault(tenant);

    private void Track(Task task)
    {
        lock (_gate)
            _settling.Add(task);
        _ = task.ContinueWith(t =>
        {
            lock (_gate)
                _settling.Remove(t);
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private static bool ShouldBounce(Envelope envelope, IEnumerable<(int Index, RecipientResult Result)> failed) =>
        !envelope.IsBounce && envelope.MailFrom.Length > 0
        && failed.Any(f => envelope.Recipients[f.Index].Route != RecipientRoute.Tenant);

    /// <summary>The destinations of the pending recipients, and the recipients refused outright (tenant or domain gone).</summary>
    private DeliveryPlan Plan(Envelope envelope, IReadOnlyList<int> pending)
    {
        var table = _routing.Current;
        var tenant = table.FindTenant(envelope.TenantId);
        var refused = new List<(int, RecipientResult)>();
        if (tenant is null)
        {
            foreach (var i in pending)
                refused.Add((i, new RecipientResult(envelope.Recipients[i].Address, RecipientOutcome.Failed, "550 5.7.1 the tenant of this message no longer exists")));
            return new DeliveryPlan(null, refused, []);
        }

        // Recipients of one domain share a lookup: the routing table is asked once per domain, not per recipient.
        var routes = new Dictionary<string, Route>(StringComparer.Ordinal);
        var byDomain = new Dictionary<(bool ToTenant, string Domain), Route?>();
        foreach (var i in pending)
        {
            var recipient = envelope.Recipients[i];
            var toTenant = recipient.Route != RecipientRoute.Mx;
            var domainName = recipient.Route == RecipientRoute.ViaM365 ? SenderDomain(envelope) : recipient.Domain;
            if (!byDomain.TryGetValue((toTenant, domainName), out var route))
                byDomain[(toTenant, domainName)] = route = RouteTo(table, tenant, toTenant, domainName, routes);
            if (route is null)
                refused.Add((i, new RecipientResult(recipient.Address, RecipientOutcome.Failed, $"550 5.1.2 domain '{domainName}' is no longer a domain of tenant '{tenant.Name}'")));
            else
                route.Indexes.Add(i);
        }
        return new DeliveryPlan(tenant, refused, routes.Values.ToArray());
    }

    /// <summary>The route to a tenant domain's MTAs or to a domain's MX, shared by destination; null when the tenant no longer has the domain.</summary>
    private Route? RouteTo(RoutingTable table, Tenant tenant, bool toTenant, string domainName, Dictionary<string, Route> routes)
    {
        string destination;
        Func<CancellationToken, Task<IReadOnlyList<MtaAddress>>> servers;
        if (toTenant)
        {
            var domain = DomainName.Normalize(domainName) is { } normal ? table.FindDomain(normal) : null;
            if (domain is null || domain.TenantId != tenant.Id)
                return null;
            destination = "tenant:" + domain.Domain;
            servers = _ => Task.FromResult(domain.Mtas);
        }
        else
        {
            var domain = domainName.ToLowerInvariant();
            destination = "mx:" + domain;
            servers = ct => _mx.ResolveAsync(domain, _options.Delivery.MxPort, ct);
        }
        if (!routes.TryGetValue(destination, out var route))
            routes[destination] = route = new Route(destination, toTenant, servers, new List<int>());
        return route;
    }

    private async Task<RouteResult> DeliverRouteAsync(Envelope envelope, Func<Stream> openMessage, Tenant tenant, Route route, CancellationToken cancellationToken)
    {
        var addresses = route.Indexes.Select(i => envelope.Recipients[i].Address).ToArray();
        IReadOnlyList<MtaAddress> servers;
        try
        {
            servers = await route.Servers(cancellationToken).ConfigureAwait(false);
        }
        catch (DnsLookupFailedException ex)
        {
            _trace.Write(new DeliveryAttempted(envelope.QueueId, DateTimeOffset.UtcNow, "dns", addresses, "deferred", ex.Message));
            return new RouteResult(route.Indexes.Select(i => (i, Deferred(envelope, i, "DNS: " + ex.Message))).ToArray(), null);
        }
        if (servers.Count == 0)
            return new RouteResult(route.Indexes.Select(i => (i, Deferred(envelope, i, "no MTA configured for this domain"))).ToArray(), null);
        var request = new DeliveryRequest
        {
            QueueId = envelope.QueueId,
            Servers = servers,
            TenantId = tenant.Id,
            RequireTls = route.ToTenant && _options.Delivery.RequireTls,
            ClientCertificate = ClientCertificateFor(tenant, route.ToTenant),
            MailFrom = envelope.MailFrom,
            Recipients = addresses,
            OpenMessage = openMessage,
            SmtpUtf8 = envelope.SmtpUtf8,
            ExtraHeaders = route.ToTenant ? [new(_options.HeaderPrefix + "Loop", tenant.LoopToken)] : [],
            Prepare = _signer is null ? null : (message, ct) => _signer.PrepareAsync(message, envelope, route.ToTenant, ct),
        };
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        var report = await _agent.DeliverAsync(request, cancellationToken).ConfigureAwait(false);
        Telemetry.PosternMetrics.AttemptTook(System.Diagnostics.Stopwatch.GetElapsedTime(started),
            report.Servers.Count > 0 ? Outcome(report.Servers[^1].Outcome) : "unreachable");
        foreach (var server in report.Servers)
            _trace.Write(new DeliveryAttempted(envelope.QueueId, DateTimeOffset.UtcNow, server.Server, server.Recipients, Outcome(server.Outcome), server.Reply));
        var unreachable = report.Unreachable ? report.Servers.Count > 0 ? report.Servers[^1].Reply : "no server could be reached" : null;
        return new RouteResult(route.Indexes.Zip(report.Recipients, (i, r) => (i, r)).ToArray(), unreachable);
    }

    private async Task BounceAsync(SpooledMessage message, IReadOnlyList<RecipientResult> failed, CancellationToken cancellationToken) =>
        await BounceAsync(message.Envelope, () => _store.OpenBody(message), failed, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Queues a delivery status notification (RFC 3464) to the envelope sender for <paramref name="failed"/>
    /// recipients, when the sender is in one of the tenant's domains (a DSN to anyone else would be backscatter);
    /// returns its queue id, or null when none is sent.
    /// </summary>
    public async Task<string?> BounceAsync(Envelope envelope, Func<Stream> openOriginal, IReadOnlyList<RecipientResult> failed, CancellationToken cancellationToken)
    {
        var stored = await SpoolBounceAsync(envelope, openOriginal, failed, QueueId.New(), cancellationToken).ConfigureAwait(false);
        if (stored is not null)
            Enqueue(stored);
        return stored?.QueueId;
    }

    /// <summary>
    /// <see cref="BounceAsync(Envelope, Func{Stream}, IReadOnlyList{RecipientResult}, CancellationToken)"/> without handing the DSN to delivery, under a queue id the caller chose: a caller that
    /// must not bounce twice (the relay's dispatch) records the DSN as done first, then enqueues it.
    /// </summary>
    public async Task<SpooledMessage?> SpoolBounceAsync(Envelope envelope, Func<Stream> openOriginal, IReadOnlyList<RecipientResult> failed, string queueId,
        CancellationToken cancellationToken)
    {
        var senderDomain = DomainName.Normalize(SenderDomain(envelope));
        var table = _routing.Current;
        if (envelope.IsBounce || envelope.MailFrom.Length == 0 || senderDomain is null
            || table.FindDomain(senderDomain) is not { } domain || domain.TenantId != envelope.TenantId)
        {
            _logger.LogInformation("{QueueId}: no delivery status notification to {Sender}: not in a domain of the tenant (it would be backscatter)",
                envelope.QueueId, envelope.MailFrom);
            return null;
        }
        byte[] dsn;
        await using (var original = openOriginal())
            dsn = DsnBuilder.Build(_options.HostName, envelope, failed, original);
        var bounce = new Envelope
        {
            QueueId = queueId,
            ReceivedAt = DateTimeOffset.UtcNow,
            TenantId = envelope.TenantId,
            MailFrom = "",
            Recipients = [new EnvelopeRecipient(envelope.MailFrom, RecipientRoute.Tenant)],
            Client = "postern",
            Subject = "Undelivered Mail Returned to Sender",
            IsBounce = true,
        };
        using var content = new MessageContent(_store.SpillDirectory);
        await content.WriteAsync(dsn, cancellationToken).ConfigureAwait(false);
        var stored = await _store.AppendAsync(bounce, ReadOnlyMemory<byte>.Empty, content, 0, cancellationToken).ConfigureAwait(false);
        _trace.Write(new MessageReceived(bounce, dsn.Length, MessageStates.Queued, $"delivery status notification for {envelope.QueueId}"));
        return stored;
    }

    private static string SenderDomain(Envelope envelope) =>
        envelope.MailFrom.Contains('@') ? envelope.MailFrom[(envelope.MailFrom.LastIndexOf('@') + 1)..] : "";

    private static string Outcome(RecipientOutcome outcome) => outcome switch
    {
        RecipientOutcome.Delivered => "delivered",
        RecipientOutcome.Deferred => "deferred",
        _ => "failed",
    };

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        if (_claimer is not null)
            await _claimer.ConfigureAwait(false);
        await _queues.WhenStoppedAsync().ConfigureAwait(false);
        Task[] settling;
        lock (_gate)
            settling = _settling.ToArray();
        await Task.WhenAll(settling).ConfigureAwait(false);
        _stopping.Dispose();
    }

    /// <summary>Where one group of a message's recipients goes: the destination's name, its servers, and which recipients.</summary>
    private sealed record Route(string Destination, bool ToTenant, Func<CancellationToken, Task<IReadOnlyList<MtaAddress>>> Servers, List<int> Indexes);

    private sealed record DeliveryPlan(Tenant? Tenant, IReadOnlyList<(int, RecipientResult)> Refused, IReadOnlyList<Route> Routes);

    /// <summary>One route's results; <see cref="Unreachable"/> says why no server could be reached, when none could.</summary>
    private sealed record RouteResult(IReadOnlyList<(int Index, RecipientResult Result)> Results, string? Unreachable);

    /// <summary>One destination's share of one attempt at a message.</summary>
    private sealed record DeliveryJob(MessageAttempt Attempt, Tenant Tenant, Route Route);

    /// <summary>Collects the results of an attempt's jobs; the last one to report settles the attempt.</summary>
    private sealed class MessageAttempt(SpooledMessage message, int jobs, IEnumerable<(int, RecipientResult)> refused)
    {
        private readonly List<(int Index, RecipientResult Result)> _results = new(refused);
        private int _outstanding = jobs;

        public SpooledMessage Message { get; } = message;

        public IReadOnlyList<(int Index, RecipientResult Result)> Results
        {
            get { lock (_results) return _results.ToArray(); }
        }

        /// <summary>Adds one job's results; true when it was the last job.</summary>
        public bool Add(IEnumerable<(int, RecipientResult)> results)
        {
            lock (_results)
            {
                _results.AddRange(results);
                return --_outstanding == 0;
            }
        }
    }
}
