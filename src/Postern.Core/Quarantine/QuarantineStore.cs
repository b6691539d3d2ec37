using System.Diagnostics.CodeAnalysis;
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

/// <summary>A `postern quarantine release` waiting for the server; it is deleted only once the server has acted on it.</summary>
public sealed record ReleaseRequest(long Id, string QuarantineId);

/// <summary>
/// A release a dead process left half done, and how start-up settled it: <paramref name="Finished"/> when its copy
/// (<paramref name="ReleasedAs"/>) was already in the spool, so the entry is now released; otherwise it is held again.
/// </summary>
public sealed record InterruptedRelease(QuarantineEntry Entry, string? ReleasedAs, bool Finished);

public static class QuarantineStates
{
    public const string Held = "held";
    public const string Releasing = "releasing";
    public const string Released = "released";
    public const string Deleted = "deleted";
}

/// <summary>
/// Quarantined messages: kept whole as files under the data directory (fsynced, then indexed in the
/// database; the relay holds a message from its dispatch record, which was on disk before the 250). Release is claimed with one conditional UPDATE, so two
/// release requests at the same time send the message on exactly once. The claim records the queue id
/// the released copy will be spooled under, so after a crash the spool alone tells whether the release
/// got as far as the spool (<see cref="RecoverInterruptedReleases"/>).
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

    /// <summary>Messages held now, and their bytes (for metrics).</summary>
    public (long Count, long Bytes) HeldSize()
    {
        using var connection = _database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = $"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM quarantine WHERE state = '{QuarantineStates.Held}'";
        using var reader = command.ExecuteReader();
        reader.Read();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    /// <summary>
    /// Stores the message (<paramref name="head"/> then <paramref name="content"/> from <paramref name="contentOffset"/>)
    /// durably and indexes it. Holding the same queue id again returns the entry already indexed (a dispatch redone
    /// after a crash), so a message is never held twice; a file a crash left unindexed is written anew.
    /// </summary>
    public QuarantineEntry Hold(Envelope envelope, ReadOnlyMemory<byte> head, MessageContent content, long contentOffset, string rule, string reason)
    {
        if (Find(envelope.QueueId) is { } existing)
            return existing;
        Directory.CreateDirectory(_directory);
        var path = PathOf(envelope.QueueId);
        long size;
        using (var handle = File.OpenHandle(path, FileMode.Create, FileAccess.Write))
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

    public QuarantineEntry Get(string id) => Find(id) ?? throw new PosternException($"no quarantined message '{id}'");

    /// <summary>The entry with this id, in whatever state; null when there is none.</summary>
    public QuarantineEntry? Find(string id)
    {
        using var connection = _database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT * FROM quarantine WHERE id = $id";
        command.Parameters.AddWithValue("$id", id);
        return Read(command).FirstOrDefault();
    }

    public Stream OpenMessage(string id)
    {
        var path = PathOf(id);
        return File.Exists(path) ? File.OpenRead(path) : throw new PosternException($"the content of quarantined message '{id}' is gone");
    }

    /// <summary>
    /// Claims a held message for release and records <paramref name="releaseAs"/>, the queue id its copy must be
    /// spooled under, before anything is spooled. Only one caller ever gets true for a given message.
    /// </summary>
    public bool TryClaimRelease(string id, [NotNullWhen(true)] out string? releaseAs)
    {
        var candidate = QueueId.New();
        releaseAs = ChangeState(id, QuarantineStates.Held, QuarantineStates.Releasing, candidate) ? candidate : null;
        return releaseAs is not null;
    }

    /// <summary>Gives a claim back: only when nothing was handed to the spool, or the message could be sent on twice.</summary>
    public void ReturnClaim(string id)
    {
        using var connection = _database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "UPDATE quarantine SET state = $held, state_changed_at = $at, released_as = NULL WHERE id = $id AND state = $releasing";
        command.Parameters.AddWithValue("$id", id);
        command.Parameters.AddWithValue("$held", QuarantineStates.Held);
        command.Parameters.AddWithValue("$releasing", QuarantineStates.Releasing);
        command.Parameters.AddWithValue("$at", TenantStore.Format(DateTimeOffset.UtcNow));
        command.ExecuteNonQuery();
    }

    /// <summary>Records that the copy <paramref name="newQueueId"/> is safe in the spool, and removes the quarantined file.</summary>
    public void MarkReleased(string id, string newQueueId)
    {
        if (ChangeState(id, QuarantineStates.Releasing, QuarantineStates.Released, newQueueId))
            File.Delete(PathOf(id));
    }

    /// <summary>
    /// Settles the releases a crashed process left "releasing": finished when the copy the claim recorded is in
    /// <paramref name="spooledQueueIds"/> (the spool just recovered it, so it will be delivered: never a second copy),
    /// otherwise held again (the copy never reached the spool: nothing is lost, it can be released again). Also
    /// removes files a crash left behind: of released or deleted entries, and of holds never indexed (the dispatch
    /// record they came from is still in the spool and holds the message again).
    /// </summary>
    /// <remarks>
    /// Call once at start, after the spool is recovered and before delivery or release starts: one node owns a data
    /// directory and its spool, so at that moment every "releasing" entry was left by a process that is gone.
    /// A copy is only handed to delivery after <see cref="MarkReleased"/>, so a copy still "releasing" cannot have
    /// been delivered and left the spool.
    /// </remarks>
    public IReadOnlyList<InterruptedRelease> RecoverInterruptedReleases(IReadOnlySet<string> spooledQueueIds)
    {
        var settled = new List<InterruptedRelease>();
        foreach (var entry in InState(QuarantineStates.Releasing))
        {
            var finished = entry.ReleasedAs is { } copy && spooledQueueIds.Contains(copy);
            if (finished)
                MarkReleased(entry.Id, entry.ReleasedAs!);
            else
                ReturnClaim(entry.Id);
            settled.Add(new InterruptedRelease(entry, entry.ReleasedAs, finished));
        }
        RemoveLeftoverFiles();
        return settled;
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

    /// <summary>
    /// The release requests not yet acted on, oldest first. They stay until <see cref="CompleteReleaseRequest"/>, so a
    /// request a crash interrupted is seen again by the next start instead of being lost.
    /// </summary>
    public IReadOnlyList<ReleaseRequest> PendingReleaseRequests()
    {
        using var connection = _database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT id, quarantine_id FROM quarantine_requests ORDER BY id";
        var requests = new List<ReleaseRequest>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
            requests.Add(new ReleaseRequest(reader.GetInt64(0), reader.GetString(1)));
        return requests;
    }

    /// <summary>Forgets a release request once it has been acted on (released, refused as not held, or failed and held again).</summary>
    public void CompleteReleaseRequest(long requestId)
    {
        using var connection = _database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "DELETE FROM quarantine_requests WHERE id = $id";
        command.Parameters.AddWithValue("$id", requestId);
        command.ExecuteNonQuery();
    }

    private List<QuarantineEntry> InState(string state)
    {
        using var connection = _database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT * FROM quarantine WHERE state = $state";
        command.Parameters.AddWithValue("$state", state);
        return Read(command);
    }

    private void RemoveLeftoverFiles()
    {
        if (!Directory.Exists(_directory))
            return;
        using var connection = _database.Open();
        foreach (var path in Directory.GetFiles(_directory, "*.eml"))
        {
            var id = Path.GetFileNameWithoutExtension(path);
            if (!QueueId.IsValid(id))
                continue;
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT state FROM quarantine WHERE id = $id";
            command.Parameters.AddWithValue("$id", id);
            if (command.ExecuteScalar() is not string state || state is QuarantineStates.Released or QuarantineStates.Deleted)
                File.Delete(path);
        }
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
