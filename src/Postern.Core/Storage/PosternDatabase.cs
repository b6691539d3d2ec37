using Microsoft.Data.Sqlite;

namespace Postern.Core.Storage;

/// <summary>
/// The embedded SQLite database under the data directory: configuration, trace and queue requests.
/// Every process (the server and each CLI command) opens its own connections; WAL mode lets
/// them read and write side by side.
/// </summary>
public sealed class PosternDatabase
{
    private const int SchemaVersion = 1;

    private readonly string _connectionString;

    public PosternDatabase(string dataDirectory)
    {
        Directory.CreateDirectory(dataDirectory);
        Path = System.IO.Path.Combine(dataDirectory, "postern.db");
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = Path,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        Migrate();
    }

    public string Path { get; }

    /// <summary>An open connection with the pragmas Postern relies on.</summary>
    public SqliteConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        using var pragma = connection.CreateCommand();
        pragma.CommandText = "PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";
        pragma.ExecuteNonQuery();
        return connection;
    }

    private void Migrate()
    {
        using var connection = Open();
        using (var wal = connection.CreateCommand())
        {
            wal.CommandText = "PRAGMA journal_mode = WAL;";
            wal.ExecuteNonQuery();
        }
        using var version = connection.CreateCommand();
        version.CommandText = "PRAGMA user_version;";
        var current = Convert.ToInt32(version.ExecuteScalar());
        if (current >= SchemaVersion)
            return;
        using var tx = connection.BeginTransaction();
        using var create = connection.CreateCommand();
        create.Transaction = tx;
        create.CommandText = Schema + $"PRAGMA user_version = {SchemaVersion};";
        create.ExecuteNonQuery();
        tx.Commit();
    }

    private const string Schema = """
        CREATE TABLE IF NOT EXISTS config_generation (id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL);
        INSERT OR IGNORE INTO config_generation (id, generation) VALUES (1, 1);

        CREATE TABLE IF NOT EXISTS tenants (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE COLLATE NOCASE,
            region TEXT NOT NULL,
            created_before_2023 INTEGER NOT NULL DEFAULT 0,
            outbound TEXT NOT NULL DEFAULT 'direct',
            relay_key_hash BLOB,
            previous_relay_key_hash BLOB,
            previous_relay_key_expires TEXT,
            loop_token TEXT NOT NULL,
            previous_loop_token TEXT,
            created_at TEXT NOT NULL);

        CREATE TABLE IF NOT EXISTS domains (
            domain TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            mtas TEXT NOT NULL,
            created_at TEXT NOT NULL);

        CREATE TABLE IF NOT EXISTS trace_messages (
            queue_id TEXT PRIMARY KEY,
            tenant_id TEXT,
            direction TEXT NOT NULL,
            mail_from TEXT NOT NULL,
            recipients TEXT NOT NULL,
            subject TEXT,
            message_id TEXT,
            size INTEGER NOT NULL,
            client TEXT NOT NULL,
            received_at TEXT NOT NULL,
            state TEXT NOT NULL,
            reason TEXT,
            next_attempt_at TEXT,
            updated_at TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS trace_messages_tenant ON trace_messages(tenant_id, received_at);
        CREATE INDEX IF NOT EXISTS trace_messages_state ON trace_messages(state);

        CREATE TABLE IF NOT EXISTS trace_attempts (
            queue_id TEXT NOT NULL,
            at TEXT NOT NULL,
            server TEXT NOT NULL,
            recipients TEXT NOT NULL,
            outcome TEXT NOT NULL,
            reply TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS trace_attempts_queue ON trace_attempts(queue_id);

        CREATE TABLE IF NOT EXISTS queue_requests (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            queue_id TEXT NOT NULL,
            requested_at TEXT NOT NULL);
        """;
}
