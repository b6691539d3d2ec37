using System.Diagnostics.Metrics;
using Postern.Core.Telemetry;
using Postern.Core.Trace;

namespace Postern.Hosting;

/// <summary>
/// The gauges read from the running node when /metrics is scraped: queue depth and oldest age per state, SMTP sessions
/// open, the quarantine's size, and build information. The database is read at most once a second.
/// </summary>
public sealed class NodeGauges
{
    private readonly NodeService _service;
    private readonly object _lock = new();
    private (DateTime At, IReadOnlyList<QueueState> Queue, long Held, long HeldBytes)? _cached;

    public NodeGauges(NodeService service)
    {
        _service = service;
        var meter = PosternMetrics.Meter;
        meter.CreateObservableGauge("postern.queue.messages", () => Read().Queue.Select(q => new Measurement<long>(q.Count, new KeyValuePair<string, object?>("state", q.State))),
            description: "Messages waiting for delivery, by state (queued, deferred).");
        meter.CreateObservableGauge("postern.queue.oldest_age", () => Read().Queue.Select(q => new Measurement<double>(
                q.OldestReceivedAt is { } at ? Math.Max(0, (DateTimeOffset.UtcNow - at).TotalSeconds) : 0, new KeyValuePair<string, object?>("state", q.State))),
            unit: "s", description: "Age of the oldest waiting message, by state.");
        meter.CreateObservableGauge("postern.smtp.sessions_open", () => _service.Node?.ActiveSessions ?? 0,
            description: "SMTP sessions open now.");
        meter.CreateObservableGauge("postern.quarantine.messages", () => Read().Held, description: "Messages held in the quarantine.");
        meter.CreateObservableGauge("postern.quarantine.size", () => Read().HeldBytes, unit: "By", description: "Bytes held in the quarantine.");
        meter.CreateObservableGauge("postern.certificate.expiry_timestamp", Expiries, unit: "s",
            description: "When each certificate the node presents expires (Unix time): each region's, and each tenant's.");
        meter.CreateObservableGauge("postern.build.info", () => new Measurement<int>(1,
                new KeyValuePair<string, object?>("version", PosternMetrics.Version), new KeyValuePair<string, object?>("runtime", Environment.Version.ToString())),
            description: "Always 1: the version of Postern and of .NET this node runs.");
    }

    private IEnumerable<Measurement<long>> Expiries()
    {
        if (_service.Node is not { RegionCertificates: { } regions, Database: { } database } node)
            yield break;
        foreach (var region in Core.Tenants.Region.All)
            yield return new Measurement<long>(new DateTimeOffset(regions.For(region).NotAfter.ToUniversalTime()).ToUnixTimeSeconds(),
                new KeyValuePair<string, object?>("kind", "region"), new KeyValuePair<string, object?>("name", region));
        foreach (var (tenant, notAfter) in new Core.Storage.TenantCertificateStore(database).Expiries())
            yield return new Measurement<long>(notAfter.ToUnixTimeSeconds(),
                new KeyValuePair<string, object?>("kind", "tenant"), new KeyValuePair<string, object?>("name", node.TenantName(tenant) ?? tenant.ToString()));
    }

    private (DateTime At, IReadOnlyList<QueueState> Queue, long Held, long HeldBytes) Read()
    {
        lock (_lock)
        {
            if (_cached is { } cached && DateTime.UtcNow - cached.At < TimeSpan.FromSeconds(1))
                return cached;
            if (_service.Node?.Database is not { } database)
                return (DateTime.UtcNow, [], 0, 0);
            var queue = new TraceStore(database).QueueSummary();
            var (held, bytes) = new Core.Quarantine.QuarantineStore(database, "").HeldSize();
            _cached = (DateTime.UtcNow, queue, held, bytes);
            return _cached.Value;
        }
    }
}
