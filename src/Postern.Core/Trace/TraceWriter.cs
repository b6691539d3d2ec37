using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Postern.Core.Storage;

namespace Postern.Core.Trace;

/// <summary>
/// Writes trace events to the database off the SMTP path: events queue in memory and one task
/// stores them in a transaction per batch. The spool, not the trace, is what keeps mail safe.
/// </summary>
public sealed class TraceWriter : IAsyncDisposable
{
    private readonly PosternDatabase _database;
    private readonly ILogger _logger;
    private readonly Channel<TraceEvent> _events = Channel.CreateUnbounded<TraceEvent>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Task _loop;

    public TraceWriter(PosternDatabase database, ILogger<TraceWriter> logger)
    {
        _database = database;
        _logger = logger;
        _loop = Task.Run(WriteLoopAsync);
    }

    public void Write(TraceEvent traceEvent)
    {
        Telemetry.PosternMetrics.Observe(traceEvent);
        _events.Writer.TryWrite(traceEvent);
    }

    /// <summary>Completes when everything written so far is stored (for tests and shutdown).</summary>
    public async Task FlushAsync()
    {
        var marker = new FlushMarker();
        _events.Writer.TryWrite(marker);
        await marker.Done.Task.ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        _events.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
    }

    private async Task WriteLoopAsync()
    {
        var batch = new List<TraceEvent>();
        var reader = _events.Reader;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            batch.Clear();
            while (batch.Count < 2000 && reader.TryRead(out var e))
                batch.Add(e);
            try
            {
                Store(batch);
            }
            catch (Exception ex)
            {
                _logger.LogError(ex, "Could not write {Count} trace events", batch.Count);
            }
            foreach (var marker in batch.OfType<FlushMarker>())
                marker.Done.TrySetResult();
        }
    }

    private void Store(List<TraceEvent> batch)
    {
        using var connection = _database.Open();
        using var tx = connection.BeginTransaction();
        using var received = Command(connection, tx, """
            INSERT INTO trace_messages (queue_id, tenant_id, direction, mail_from, recipients, subject, message_id, size, client, received_at, state, reason, updated_at, verdict, findings)
            VALUES ($id, $tenant, $direction, $from, $rcpts, $subject, $mid, $size, $client, $at, $state, $reason, $at, $verdict, $findings)
            ON CONFLICT(queue_id) DO NOTHING
            """, "$id", "$tenant", "$direction", "$from", "$rcpts", "$subject", "$mid", "$size", "$client", "$at", "$state", "$reason", "$verdict", "$findings");
        using var attempt = Command(connection, tx, """
            INSERT INTO trace_attempts (queue_id, at, server, recipients, outcome, reply) VALUES ($id, $at, $server, $rcpts, $outcome, $reply)
            """, "$id", "$at", "$server", "$rcpts", "$outcome", "$reply");
        using var state = Command(connection, tx, """
            UPDATE trace_messages SET state = $state, reason = $reason, next_attempt_at = $next, updated_at = $at WHERE queue_id = $id
            """, "$id", "$state", "$reason", "$next", "$at");
        foreach (var e in batch)
        {
            switch (e)
            {
                case MessageReceived r:
                    Run(received, r.QueueId, r.Envelope.TenantId == Guid.Empty ? null : r.Envelope.TenantId.ToString(), r.Envelope.Direction,
                        r.Envelope.MailFrom, string.Join(' ', r.Envelope.Recipients.Select(x => x.Address)), r.Envelope.Subject,
                        r.Envelope.MessageId, r.Size, r.Envelope.Client, TenantStore.Format(r.At), r.State, r.Reason, r.Verdict,
                        r.Findings is { Count: > 0 } findings ? System.Text.Json.JsonSerializer.Serialize(findings, TraceJson.Options) : null);
                    break;
                case DeliveryAttempted a:
                    Run(attempt, a.QueueId, TenantStore.Format(a.At), a.Server, string.Join(' ', a.Recipients), a.Outcome, a.Reply);
                    break;
                case MessageStateChanged s:
                    Run(state, s.QueueId, s.State, s.Reason, s.NextAttemptAt is { } n ? TenantStore.Format(n) : null, TenantStore.Format(s.At));
                    break;
            }
        }
        tx.Commit();
    }

    private static SqliteCommand Command(SqliteConnection connection, SqliteTransaction tx, string sql, params string[] names)
    {
        var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        foreach (var name in names)
            command.Parameters.Add(new SqliteParameter(name, null));
        command.Prepare();
        return command;
    }

    private static void Run(SqliteCommand command, params object?[] values)
    {
        for (var i = 0; i < values.Length; i++)
            command.Parameters[i].Value = values[i] ?? DBNull.Value;
        command.ExecuteNonQuery();
    }

    private sealed record FlushMarker() : TraceEvent("", DateTimeOffset.MinValue)
    {
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

internal static class TraceJson
{
    public static readonly System.Text.Json.JsonSerializerOptions Options = new(System.Text.Json.JsonSerializerDefaults.Web);
}
