using Microsoft.Extensions.Logging;

namespace Postern.Core.Relay;

/// <summary>The relay's per-message log lines, source-generated: they run for every message, so no boxing or parsing.</summary>
internal static partial class RelayLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information,
        Message = "{QueueId}: accepted from {Client} for tenant {Tenant}, {Direction}, {Recipients} recipients, {Size} bytes, verdict {Verdict}")]
    public static partial void Accepted(ILogger logger, string queueId, string client, string tenant, string direction, int recipients, long size, string verdict);

    [LoggerMessage(EventId = 101, Level = LogLevel.Information, Message = "{QueueId}: refused from {Client}: {Code} {Reason}")]
    public static partial void Refused(ILogger logger, string queueId, string client, int code, string reason);
}
