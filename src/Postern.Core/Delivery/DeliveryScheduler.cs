using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Postern.Core.Certificates;
using Postern.Core.Configuration;
using Postern.Core.Spool;
using Postern.Core.Storage;
using Postern.Core.Tenants;
using Postern.Core.Trace;

namespace Postern.Core.Delivery;

/// <summary>
/// The queue manager: takes spooled messages, delivers each recipient group (tenant MTAs, or MX for
/// outbound), retries temporary failures on the configured schedule, bounces or records permanent
/// ones, and tells the spool which recipients are finished.
/// </summary>
public sealed class DeliveryScheduler : IAsyncDisposable
{
    private readonly PosternOptions _options;
    private readonly MessageSpool _spool;
    private readonly SmtpDeliveryAgent _agent;
    private readonly MxResolver _mx;
    private readonly RoutingTableSource _routing;
    private readonly RegionCertificates _certificates;
    private readonly TraceWriter _trace;
    private readonly OutgoingSigner? _signer;
    private readonly ILogger _logger;
    private readonly Channel<SpooledMessage> _ready = Channel.CreateUnbounded<SpooledMessage>();
    private readonly object _gate = new();
    private readonly Dictionary<string, SpooledMessage> _waiting = new(StringComparer.Ordinal);
    private readonly PriorityQueue<SpooledMessage, DateTimeOffset> _deferred = new();
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _workers = new();

    public DeliveryScheduler(PosternOptions options, MessageSpool spool, SmtpDeliveryAgent agent, MxResolver mx, RoutingTableSource routing,
        RegionCertificates certificates, TraceWriter trace, ILogger<DeliveryScheduler> logger, OutgoingSigner? signer = null)
    {
        _signer = signer;
        _options = options;
        _spool = spool;
        _agent = agent;
        _mx = mx;
        _routing = routing;
        _certificates = certificates;
        _trace = trace;
        _logger = logger;
    }

    /// <summary>Messages waiting for a retry.</summary>
    public int DeferredCount
    {
        get { lock (_gate) return _deferred.Count; }
    }

    public void Start(IEnumerable<SpooledMessage> recovered)
    {
        foreach (var message in recovered)
            Enqueue(message);
        var workers = Math.Max(32, _options.Delivery.MaxConnectionsPerDestination * 2);
        for (var i = 0; i < workers; i++)
            _workers.Add(Task.Run(WorkAsync));
        _workers.Add(Task.Run(ReleaseDueAsync));
    }

    /// <summary>Delivers a newly spooled message as soon as a worker is free.</summary>
    public void Enqueue(SpooledMessage message) => _ready.Writer.TryWrite(message);

    /// <summary>Moves a deferred message (or all, with "*") to the front; returns how many were moved.</summary>
    public int RetryNow(string queueId)
    {
        List<SpooledMessage> due;
        lock (_gate)
        {
            due = queueId == "*" ? _waiting.Values.ToList() : _waiting.TryGetValue(queueId, out var one) ? [one] : [];
            foreach (var message in due)
                _waiting.Remove(message.QueueId);
            if (due.Count > 0)
            {
                var rest = new List<(SpooledMessage, DateTimeOffset)>();
                while (_deferred.TryDequeue(out var m, out var at))
                    if (!due.Contains(m))
                        rest.Add((m, at));
                foreach (var (m, at) in rest)
                    _deferred.Enqueue(m, at);
            }
        }
        foreach (var message in due)
            Enqueue(message);
        return due.Count;
    }

    /// <summary>
    /// Delivers the given recipients of a message now, without queueing: used by handoff listeners,
    /// which answer the client only after the next hop did.
    /// </summary>
    public Task<IReadOnlyList<(int Index, RecipientResult Result)>> DeliverNowAsync(Envelope envelope, Func<Stream> openMessage, CancellationToken cancellationToken) =>
        DeliverRecipientsAsync(envelope, openMessage, Enumerable.Range(0, envelope.Recipients.Count).ToArray(), cancellationToken);

    private async Task WorkAsync()
    {
        var token = _stopping.Token;
        try
        {
            await foreach (var message in _ready.Reader.ReadAllAsync(token).ConfigureAwait(false))
            {
                try
                {
                    await ProcessAsync(message, token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (token.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception ex)
                {
                    _logger.LogError(ex, "{QueueId}: delivery failed unexpectedly; retrying later", message.QueueId);
                    Defer(message, "internal error: " + ex.Message);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ReleaseDueAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(200));
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token).ConfigureAwait(false))
            {
                var now = DateTimeOffset.UtcNow;
                var due = new List<SpooledMessage>();
                lock (_gate)
                {
                    while (_deferred.TryPeek(out var message, out var at) && at <= now)
                    {
                        _deferred.Dequeue();
                        if (_waiting.Remove(message.QueueId))
                            due.Add(message);
                    }
                }
                foreach (var message in due)
                    Enqueue(message);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ProcessAsync(SpooledMessage message, CancellationToken cancellationToken)
    {
        message.Attempts++;
        var pending = message.PendingRecipients;
        if (pending.Count == 0)
            return;
        var envelope = message.Envelope;
        var results = await DeliverRecipientsAsync(envelope, () => _spool.OpenBody(message), pending, cancellationToken).ConfigureAwait(false);

        var expired = DateTimeOffset.UtcNow - envelope.ReceivedAt >= _options.Delivery.MaxAge;
        if (expired)
        {
            results = results.Select(r => r.Result.Outcome == RecipientOutcome.Deferred
                ? (r.Index, r.Result with { Outcome = RecipientOutcome.Failed, Reply = $"expired after {_options.Delivery.MaxAge}: {r.Result.Reply}" })
                : r).ToArray();
        }

        var failed = results.Where(r => r.Result.Outcome == RecipientOutcome.Failed).ToArray();
        if (failed.Length > 0 && ShouldBounce(envelope, failed))
            await BounceAsync(message, failed.Select(f => f.Result).ToArray(), cancellationToken).ConfigureAwait(false);

        var finished = results.Where(r => r.Result.Outcome != RecipientOutcome.Deferred).Select(r => r.Index).ToArray();
        _spool.Finish(message, finished);

        var deferred = results.Where(r => r.Result.Outcome == RecipientOutcome.Deferred).ToArray();
        if (deferred.Length > 0)
        {
            Defer(message, deferred[0].Result.Reply);
            return;
        }
        var all = message.Envelope.Recipients.Count;
        var failedTotal = failed.Length;
        var state = failedTotal == 0 ? MessageStates.Delivered : failedTotal == results.Count && finished.Length == all ? MessageStates.Failed : MessageStates.PartlyFailed;
        var reason = failedTotal == 0 ? results[^1].Result.Reply : failed[0].Result.Reply;
        _trace.Write(new MessageStateChanged(message.QueueId, DateTimeOffset.UtcNow, state, reason));
    }

    private void Defer(SpooledMessage message, string reason)
    {
        var delays = _options.Delivery.RetryDelays;
        var delay = delays[Math.Clamp(message.Attempts - 1, 0, delays.Count - 1)];
        var next = DateTimeOffset.UtcNow + delay;
        lock (_gate)
        {
            _waiting[message.QueueId] = message;
            _deferred.Enqueue(message, next);
        }
        _trace.Write(new MessageStateChanged(message.QueueId, DateTimeOffset.UtcNow, MessageStates.Deferred, reason, next));
    }

    private static bool ShouldBounce(Envelope envelope, IEnumerable<(int Index, RecipientResult Result)> failed) =>
        !envelope.IsBounce && envelope.MailFrom.Length > 0
        && failed.Any(f => envelope.Recipients[f.Index].Route != RecipientRoute.Tenant);

    private async Task<IReadOnlyList<(int Index, RecipientResult Result)>> DeliverRecipientsAsync(
        Envelope envelope, Func<Stream> openMessage, IReadOnlyList<int> pending, CancellationToken cancellationToken)
    {
        var table = _routing.Current;
        var tenant = table.FindTenant(envelope.TenantId);
        var results = new List<(int, RecipientResult)>();
        if (tenant is null)
        {
            foreach (var i in pending)
                results.Add((i, new RecipientResult(envelope.Recipients[i].Address, RecipientOutcome.Failed, "550 5.7.1 the tenant of this message no longer exists")));
            return results;
        }

        var groups = new Dictionary<string, (Func<Task<IReadOnlyList<MtaAddress>>> Servers, bool Tenant, List<int> Indexes)>();
        foreach (var i in pending)
        {
            var recipient = envelope.Recipients[i];
            switch (recipient.Route)
            {
                case RecipientRoute.Tenant:
                case RecipientRoute.ViaM365:
                    {
                        var domainName = recipient.Route == RecipientRoute.Tenant ? recipient.Domain : SenderDomain(envelope);
                        var domain = DomainName.Normalize(domainName) is { } normal ? table.FindDomain(normal) : null;
                        if (domain is null || domain.TenantId != tenant.Id)
                        {
                            results.Add((i, new RecipientResult(recipient.Address, RecipientOutcome.Failed, $"550 5.1.2 domain '{domainName}' is no longer a domain of tenant '{tenant.Name}'")));
                            continue;
                        }
                        var key = "tenant:" + domain.Domain;
                        if (!groups.TryGetValue(key, out var group))
                            groups[key] = group = (() => Task.FromResult(domain.Mtas), true, new List<int>());
                        group.Indexes.Add(i);
                        break;
                    }
                case RecipientRoute.Mx:
                    {
                        var domain = recipient.Domain.ToLowerInvariant();
                        var key = "mx:" + domain;
                        if (!groups.TryGetValue(key, out var group))
                            groups[key] = group = (() => _mx.ResolveAsync(domain, _options.Delivery.MxPort, cancellationToken), false, new List<int>());
                        group.Indexes.Add(i);
                        break;
                    }
            }
        }

        var certificate = _certificates.For(tenant.Region);
        var tasks = groups.Values.Select(async group =>
        {
            var addresses = group.Indexes.Select(i => envelope.Recipients[i].Address).ToArray();
            IReadOnlyList<MtaAddress> servers;
            try
            {
                servers = await group.Servers().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is DnsLookupFailedException or DnsClient.DnsResponseException)
            {
                _trace.Write(new DeliveryAttempted(envelope.QueueId, DateTimeOffset.UtcNow, "dns", addresses, "deferred", ex.Message));
                return group.Indexes.Select(i => (i, new RecipientResult(envelope.Recipients[i].Address, RecipientOutcome.Deferred, "DNS: " + ex.Message))).ToArray();
            }
            if (servers.Count == 0)
                return group.Indexes.Select(i => (i, new RecipientResult(envelope.Recipients[i].Address, RecipientOutcome.Deferred, "no MTA configured for this domain"))).ToArray();
            var request = new DeliveryRequest
            {
                QueueId = envelope.QueueId,
                Servers = servers,
                RequireTls = group.Tenant && _options.Delivery.RequireTls,
                ClientCertificate = certificate,
                MailFrom = envelope.MailFrom,
                Recipients = addresses,
                OpenMessage = openMessage,
                SmtpUtf8 = envelope.SmtpUtf8,
                ExtraHeaders = group.Tenant ? [new(_options.HeaderPrefix + "Loop", tenant.LoopToken)] : [],
                Prepare = _signer is null ? null : (message, ct) => _signer.PrepareAsync(message, envelope, group.Tenant, ct),
            };
            var report = await _agent.DeliverAsync(request, cancellationToken).ConfigureAwait(false);
            foreach (var server in report.Servers)
                _trace.Write(new DeliveryAttempted(envelope.QueueId, DateTimeOffset.UtcNow, server.Server, server.Recipients, Outcome(server.Outcome), server.Reply));
            return group.Indexes.Zip(report.Recipients, (i, r) => (i, r)).ToArray();
        }).ToArray();
        foreach (var groupResults in await Task.WhenAll(tasks).ConfigureAwait(false))
            results.AddRange(groupResults);
        return results;
    }

    private async Task BounceAsync(SpooledMessage message, IReadOnlyList<RecipientResult> failed, CancellationToken cancellationToken) =>
        await BounceAsync(message.Envelope, () => _spool.OpenBody(message), failed, cancellationToken).ConfigureAwait(false);

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
        using var content = new MessageContent(_spool.SpillDirectory);
        await content.WriteAsync(dsn, cancellationToken).ConfigureAwait(false);
        var stored = await _spool.AppendAsync(bounce, ReadOnlyMemory<byte>.Empty, content, 0, cancellationToken).ConfigureAwait(false);
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
        _ready.Writer.TryComplete();
        await _stopping.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_workers).ConfigureAwait(false);
        _stopping.Dispose();
    }
}
