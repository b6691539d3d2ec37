using System.Globalization;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Postern.Core.Spool;
using Postern.Core.Storage;

namespace Postern.Core.Quarantine;

/// <summary>A quarantined message as the index knows it.</summary>
public sealed record QuarantineEntry(
    string Id, Guid TenantId, Envelope Envelope, long Size, DateTimeOffset QuarantinedAt, string Rule, string Reason,
    string State, DateTimeOffset StateChangedAt, string? ReleasedAs);

public static class QuarantineStates
{
    public const string Held = "held";
    public const string Releasing = "releasing";
    public const string Released = "released";
    public const string Deleted = "deleted";
}

/// <summary>
/// Quarantined messages: kept whole as files under the data directory (fsynced before the client
/// gets its 250), indexed in the database. Release is claimed with one conditional UPDATE, so two
/// release requests at the same time send the message on exactly once.
/// </summary>
public sealed class QuarantineStore
{
    private readonly PosternDatabase _database;
    private readonly string _directory;

    public QuarantineStore(PosternDatabase database, string dataDirectory)
    {
        _database = database;
        _directory = Path.Combine(dataDirectory, "quarantine");
    }

    /// <summary>Stores the message (<paramref name="head"/> then <paramref name="content"/> from <paramref name="contentOffset"/>) durably and indexes it.</summary>
    public QuarantineEntry Hold(Envelope envelope, ReadOnlyMemory<byte> head, MessageContent content, long contentOffset, string rule, string reason)
    {
        Directory.CreateDirectory(_directory);
        var path = PathOf(envelope.QueueId);
        long size;
        using (var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.Write))
        {
            RandomAccess.Write(handle, head.Span, 0);
            size = head.Length + content.CopyRangeTo(handle, head.Length, contentOffset);
            RandomAccess.FlushToDisk(handle);
        }
        DirectorySync.Fsync(_directory);
        var now = DateTimeOffset.UtcNow;
        using var connection = _database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """
            INSERT INTO quarantine (id, tenant_id, envelope, size, quarantined_at, rule, reason, state, state_changed_at)
            VALUES ($id, $tenant, $envelope, $size, $at, $rule, $reason, $state, $at)
            """;
        command.Parameters.AddWithValue("$id", envelope.QueueId);
        command.Parameters.AddWithValue("$tenant", envelope.TenantId.ToString());
        command.Parameters.AddWithValue("$envelope", JsonSerializer.Serialize(envelope, SpoolJsonContext.Default.Envelope));
        command.Parameters.AddWithValue("$size", size);
        command.Parameters.AddWithValue("$at", TenantStore.Format(now));
        command.Parameters.AddWithValue("$rule", rule);
        command.Parameters.AddWithValue("$reason", reason);
        command.Parameters.AddWithValue("$state", QuarantineStates.Held);
        command.ExecuteNonQuery();
        return new QuarantineEntry(envelope.QueueId, envelope.TenantId, envelope, size, now, rule, reason, QuarantineStates.Held, now, null);
    }

    public IReadOnlyList<QuarantineEntry> List(Guid? tenantId = null, bool includeFinished = false, int limit = 1000)
    {
        using var connection = _database.Open();
        using var command = connection.CreateCommand();
        var where = new List<string>();
        if (tenantId is { } id)
        {
            where.Add("tenant_id = $tenant");
            command.Parameters.AddWithValue("$tenant", id.ToString());
        }
        if (!includeFinished)
            where.Add($"state IN ('{QuarantineStates.Held}', '{QuarantineStates.Releasing}')");
        command.CommandText = "SELECT * FROM quarantine" + (where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "") +
            " ORDER BY quarantined_at DESC LIMIT $limit";
        command.Parameters.AddWithValue("$limit", limit);
        return Read(command);
    }

    public QuarantineEntry Get(string id)
    {
        using var connection = _database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT * FROM quarantine WHERE id = $id";
        command.Parameters.AddWithValue("$id", id);
        return Read(command).FirstOrDefault() ?? throw new PosternException($"no quarantined message '{id}'");
    }

    public Stream OpenMessage(string id)
    {
        var path = PathOf(id);
        return File.Exists(path) ? File.OpenRead(path) : throw new PosternException($"the content of quarantined message '{id}' is gone");
    }

    /// <summary>Claims a held message for release. Only one caller ever gets true for a given message.</summary>
    public bool TryClaimRelease(string id) => ChangeState(id, QuarantineStates.Held, QuarantineStates.Releasing, null);

    /// <summary>Gives a claim back (the release failed before anything was sent on).</summary>
    public void ReturnClaim(string id) => ChangeState(id, QuarantineStates.Releasing, QuarantineStates.Held, null);

    public void MarkReleased(string id, string newQueueId)
    {
        ChangeState(id, QuarantineStates.Releasing, QuarantineStates.Released, newQueueId);
        File.Delete(PathOf(id));
    }

    /// <summary>Deletes a held message for good.</summary>
    public void Delete(string id)
    {
        if (!ChangeState(id, QuarantineStates.Held, QuarantineStates.Deleted, null))
        {
            var entry = Get(id);
            throw new PosternException($"quarantined message '{id}' is {entry.State}, not held");
        }
        File.Delete(PathOf(id));
    }

    /// <summary>Asks a running server to release a message (it owns the spool).</summary>
    public void RequestRelease(string id)
    {
        using var connection = _database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "INSERT INTO quarantine_requests (quarantine_id, requested_at) VALUES ($id, $at)";
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$at", TenantStore.Format(DateTimeOffset.UtcNow));
        command.ExecuteNonQuery();
    }

    /// <summary>Takes the pending release requests (each is handed out once).</summary>
    public IReadOnlyList<string> TakeReleaseRequests()
    {
        using var connection = _database.Open();
        using var tx = connection.BeginTransaction(deferred: false);
        var ids = new List<string>();
        using (var read = connection.CreateCommand())
        {
            read.Transaction = tx;
            read.CommandText = "SELECT quarantine_id FROM quarantine_requests ORDER BY id";
            using var reader = read.ExecuteReader();
            while (reader.Read())
                ids.Add(reader.GetString(0));
        }
        using (var delete = connection.CreateCommand())
        {
            delete.Transaction = tx;
            delete.CommandText = "DELETE FROM quarantine_requests";
            delete.ExecuteNonQuery();
        }
        tx.Commit();
        return ids;
    }

    private bool ChangeState(string id, string from, string to, string? releasedAs)
    {
        using var connection = _database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = """
            UPDATE quarantine SET state = $to, state_changed_at = $at, released_as = COALESCE($as, released_as)
            WHERE id = $id AND state = $from
            """;
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$from", from);
        command.Parameters.AddWithValue("$to", to);
        command.Parameters.AddWithValue("$at", TenantStore.Format(DateTimeOffset.UtcNow));
        command.Parameters.AddWithValue("$as", (object?)releasedAs ?? DBNull.Value);
        return command.ExecuteNonQuery() == 1;
    }

    private string PathOf(string id)
    {
        if (!QueueId.IsValid(id))
            throw new PosternException($"'{id}' is not a quarantine id");
        return Path.Combine(_directory, id + ".eml");
    }

    private static List<QuarantineEntry> Read(SqliteCommand command)
    {
        var result = new List<QuarantineEntry>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            result.Add(new QuarantineEntry(
                reader.GetString(reader.GetOrdinal("id")),
                Guid.Parse(reader.GetString(reader.GetOrdinal("tenant_id"))),
                JsonSerializer.Deserialize(reader.GetString(reader.GetOrdinal("envelope")), SpoolJsonContext.Default.Envelope)!,
                reader.GetInt64(reader.GetOrdinal("size")),
                DateTimeOffset.Parse(reader.GetString(reader.GetOrdinal("quarantined_at")), CultureInfo.InvariantCulture),
                reader.GetString(reader.GetOrdinal("rule")),
                reader.GetString(reader.GetOrdinal("reason")),
                reader.GetString(reader.GetOrdinal("state")),
                DateTimeOffset.Parse(reader.GetString(reader.GetOrdinal("state_changed_at")), CultureInfo.InvariantCulture),
                reader["released_as"] as string));
        }
        return result;
    }
}
