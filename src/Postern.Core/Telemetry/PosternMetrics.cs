using System.Diagnostics.Metrics;
using System.Reflection;
using System.Text.RegularExpressions;
using Postern.Core.Spool;
using Postern.Core.Trace;

namespace Postern.Core.Telemetry;

/// <summary>
/// Postern's own metrics (System.Diagnostics.Metrics, meter "Postern"), exported by the host in Prometheus' text
/// format: OpenTelemetry turns "postern.messages.received" into postern_messages_received_total and a histogram in
/// seconds into postern_…_seconds. Labels are bounded — direction, verdict, engine, outcome, state, an enhanced status
/// code, and the tenant's name (switched off with Postern:Metrics:TenantLabel for very large deployments); never an
/// address. Message counts come from the trace events every stage already writes, so a metric and the trace cannot
/// disagree about what happened.
/// </summary>
public static partial class PosternMetrics
{
    public const string MeterName = "Postern";

    public static readonly string Version =
        typeof(PosternMetrics).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public static readonly Meter Meter = new(MeterName, Version);

    private static readonly Counter<long> Received = Meter.CreateCounter<long>("postern.messages.received",
        description: "Messages accepted (answered 250), by direction, tenant and the verdict's action.");

    private static readonly Counter<long> Refused = Meter.CreateCounter<long>("postern.messages.refused",
        description: "Messages refused at the end of DATA or by a rule, by enhanced status code.");

    private static readonly Counter<long> Delivered = Meter.CreateCounter<long>("postern.messages.delivered",
        description: "Messages delivered to every recipient.");

    private static readonly Counter<long> Deferred = Meter.CreateCounter<long>("postern.messages.deferred",
        description: "Deliveries put off for a retry, by enhanced status code of the last reply.");

    private static readonly Counter<long> Failed = Meter.CreateCounter<long>("postern.messages.failed",
        description: "Messages given up on for some or all recipients (bounced when outbound), by state and status code.");

    private static readonly Counter<long> Quarantined = Meter.CreateCounter<long>("postern.messages.quarantined",
        description: "Messages (or parts) held in the quarantine.");

    private static readonly Counter<long> Attempts = Meter.CreateCounter<long>("postern.delivery.attempts",
        description: "Delivery attempts to a server, by outcome.");

    private static readonly Histogram<double> AttemptDuration = Meter.CreateHistogram<double>("postern.delivery.duration", unit: "s",
        description: "How long a delivery attempt took, by outcome.");

    private static readonly Histogram<double> ScanDuration = Meter.CreateHistogram<double>("postern.scan.duration", unit: "s",
        description: "How long each scanning engine took for a message.");

    private static readonly Counter<long> EngineErrors = Meter.CreateCounter<long>("postern.scan.errors",
        description: "Scans an engine could not do (unreachable, timed out, failed).");

    /// <summary>Whether the tenant label is set (Postern:Metrics:TenantLabel).</summary>
    public static bool TenantLabel { get; set; } = true;

    /// <summary>Tenant id → name, for the tenant label; kept by the host from the routing table.</summary>
    public static Func<Guid, string?> TenantName { get; set; } = _ => null;

    /// <summary>
    /// Series that exist from the start at zero (Prometheus' advice for known label values): delivered, and each
    /// enabled engine's errors, so a dashboard or alert on them has data before the first event.
    /// </summary>
    public static void Initialize(IEnumerable<string> engines)
    {
        Delivered.Add(0);
        foreach (var engine in engines)
            EngineErrors.Add(0, new KeyValuePair<string, object?>("engine", engine));
    }

    /// <summary>Counts what a trace event says happened.</summary>
    public static void Observe(TraceEvent traceEvent)
    {
        switch (traceEvent)
        {
            case MessageReceived { State: MessageStates.Refused } refused:
                Refused.Add(1, new KeyValuePair<string, object?>("code", Code(refused.Reason)));
                break;
            case MessageReceived { State: MessageStates.Quarantined } quarantined:
                Quarantined.Add(1, Tenant(quarantined.Envelope));
                break;
            case MessageReceived received:
                Received.Add(1, new("direction", Direction(received.Envelope)), new("verdict", Action(received.Verdict)), Tenant(received.Envelope));
                break;
            case MessageStateChanged { State: MessageStates.Delivered }:
                Delivered.Add(1);
                break;
            case MessageStateChanged { State: MessageStates.Deferred } deferred:
                Deferred.Add(1, new KeyValuePair<string, object?>("code", Code(deferred.Reason)));
                break;
            case MessageStateChanged { State: MessageStates.Failed or MessageStates.PartlyFailed } failed:
                Failed.Add(1, new("state", failed.State), new("code", Code(failed.Reason)));
                break;
            case MessageStateChanged { State: MessageStates.Quarantined }:
                Quarantined.Add(1);
                break;
            case DeliveryAttempted attempt:
                Attempts.Add(1, new KeyValuePair<string, object?>("outcome", attempt.Outcome));
                break;
        }
    }

    /// <summary>One delivery attempt's duration.</summary>
    public static void AttemptTook(TimeSpan duration, string outcome) =>
        AttemptDuration.Record(duration.TotalSeconds, new KeyValuePair<string, object?>("outcome", outcome));

    /// <summary>One engine's scan of one message; <paramref name="failed"/> when it could not scan.</summary>
    public static void Scanned(string engine, TimeSpan duration, bool failed)
    {
        ScanDuration.Record(duration.TotalSeconds, new KeyValuePair<string, object?>("engine", engine));
        if (failed)
            EngineErrors.Add(1, new KeyValuePair<string, object?>("engine", engine));
    }

    private static KeyValuePair<string, object?> Tenant(Envelope envelope) =>
        new("tenant", TenantLabel ? TenantName(envelope.TenantId) ?? "unknown" : "all");

    private static string Direction(Envelope envelope) => envelope.IsBounce ? "bounce" : envelope.Direction;

    /// <summary>The verdict's action: "deliver", "tag", "quarantine", … (the rule's name stays in the trace).</summary>
    private static string Action(string? verdict) =>
        verdict is null ? "none" : verdict.Split(' ', 2)[0].ToLowerInvariant() is { Length: > 0 and <= 20 } action ? action : "other";

    /// <summary>The enhanced status code a reply or reason starts with (5.7.1), or the reply code, or "other".</summary>
    private static string Code(string? reason)
    {
        if (reason is null)
            return "none";
        var match = StatusCode().Match(reason);
        return match.Success ? match.Groups[1].Value : "other";
    }

    [GeneratedRegex(@"\b([245]\.\d{1,3}\.\d{1,3})\b")]
    private static partial Regex StatusCode();
}
