using Postern.Core.Storage;

namespace Postern.Core.Trace;

/// <summary>A message as the trace knows it.</summary>
public sealed record TraceRecord(
    string QueueId, string? TenantId, string Direction, string MailFrom, IReadOnlyList<string> Recipients, string? Subject,
    string? MessageId, long Size, string Client, string ReceivedAt, string State, string? Reason, string? NextAttemptAt,
    IReadOnlyList<TraceAttempt> Attempts, string? Verdict = null, IReadOnlyList<Scanning.Finding>? Findings = null);

public sealed record TraceAttempt(string At, string Server, IReadOnlyList<string> Recipients, string Outcome, string Reply);

/// <summary>How many messages wait in one queue state, and since when the oldest of them.</summary>
public sealed record QueueState(string State, long Count, DateTimeOffset? OldestReceivedAt);

/// <summary>Queries over the trace: the queue view and message history.</summary>
public sealed class TraceStore(PosternDatabase database)
{
    /// <summary>Messages queued and deferred, with the oldest of each (for metrics and health).</summary>
    public IReadOnlyList<QueueState> QueueSummary()
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT state, COUNT(*), MIN(received_at) FROM trace_messages WHERE state IN ('{MessageStates.Queued}', '{MessageStates.Deferred}') GROUP BY state";
        var states = new Dictionary<string, QueueState>
        {
            [MessageStates.Queued] = new(MessageStates.Queued, 0, null),
            [MessageStates.Deferred] = new(MessageStates.Deferred, 0, null),
        };
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            DateTimeOffset? oldest = reader.IsDBNull(2) || !DateTimeOffset.TryParse(reader.GetString(2), System.Globalization.CultureInfo.InvariantCulture,
                System.Globalization.DateTimeStyles.AssumeUniversal, out var at) ? null : at;
            states[reader.GetString(0)] = new QueueState(reader.GetString(0), reader.GetInt64(1), oldest);
        }
        return [.. states.Values];
    }

    public IReadOnlyList<TraceRecord> List(Guid? tenantId = null, bool queuedOnly = false, int limit = 1000)
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        var where = new List<string>();
        if (tenantId is { } id)
        {
            where.Add("tenant_id = $tenant");
            command.Parameters.AddWithValue("$tenant", id.ToString());
        }
        if (queuedOnly)
            where.Add($"state IN ('{MessageStates.Queued}', '{MessageStates.Deferred}')");
        command.CommandText = "SELECT queue_id, tenant_id, direction, mail_from, recipients, subject, message_id, size, client, received_at, state, reason, next_attempt_at, verdict, findings " +
            "FROM trace_messages" + (where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "") + " ORDER BY received_at DESC LIMIT $limit";
        command.Parameters.AddWithValue("$limit", limit);
        var records = new List<TraceRecord>();
        using (var reader = command.ExecuteReader())
        {
            while (reader.Read())
            {
                records.Add(new TraceRecord(reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1), reader.GetString(2), reader.GetString(3),
                    reader.GetString(4).Split(' ', StringSplitOptions.RemoveEmptyEntries), reader.IsDBNull(5) ? null : reader.GetString(5),
                    reader.IsDBNull(6) ? null : reader.GetString(6), reader.GetInt64(7), reader.GetString(8), reader.GetString(9), reader.GetString(10),
                    reader.IsDBNull(11) ? null : reader.GetString(11), reader.IsDBNull(12) ? null : reader.GetString(12), [],
                    reader.IsDBNull(13) ? null : reader.GetString(13),
                    reader.IsDBNull(14) ? null : System.Text.Json.JsonSerializer.Deserialize<Scanning.Finding[]>(reader.GetString(14), TraceJson.Options)));
            }
        }
        if (records.Count == 0)
            return records;
        using var attempts = connection.CreateCommand();
        attempts.CommandText = "SELECT queue_id, at, server, recipients, outcome, reply FROM trace_attempts WHERE queue_id IN (SELECT value FROM json_each($ids)) ORDER BY at";
        attempts.Parameters.AddWithValue("$ids", System.Text.Json.JsonSerializer.Serialize(records.Select(r => r.QueueId).ToArray()));
        var byId = new Dictionary<string, List<TraceAttempt>>();
        using (var reader = attempts.ExecuteReader())
        {
            while (reader.Read())
            {
                if (!byId.TryGetValue(reader.GetString(0), out var list))
                    byId[reader.GetString(0)] = list = new List<TraceAttempt>();
                list.Add(new TraceAttempt(reader.GetString(1), reader.GetString(2), reader.GetString(3).Split(' ', StringSplitOptions.RemoveEmptyEntries),
                    reader.GetString(4), reader.GetString(5)));
            }
        }
        return records.Select(r => byId.TryGetValue(r.QueueId, out var list) ? r with { Attempts = list } : r).ToArray();
    }

    /// <summary>Asks a running server to retry a queued message now ("*" for all); the server polls these requests.</summary>
    public void RequestRetry(string queueId)
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO queue_requests (queue_id, requested_at) VALUES ($id, $at)";
        command.Parameters.AddWithValue("$id", queueId);
        command.Parameters.AddWithValue("$at", TenantStore.Format(DateTimeOffset.UtcNow));
        command.ExecuteNonQuery();
    }
}
