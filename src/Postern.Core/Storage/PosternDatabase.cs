using Microsoft.Data.Sqlite;

namespace Postern.Core.Storage;

/// <summary>
/// The embedded SQLite database under the data directory: configuration, trace and queue requests.
/// Every process (the server and each CLI command) opens its own connections; WAL mode lets
/// them read and write side by side.
/// </summary>
public sealed class PosternDatabase
{
    /// <summary>Each entry upgrades the schema by one version; never edit one that has shipped, add a new one.</summary>
    private static readonly string[] Migrations = [SchemaV1, SchemaV2, SchemaV3, SchemaV4, SchemaV5];

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
        while (true)
        {
            // BEGIN IMMEDIATE, then read the version again: the server and a CLI command may start together.
            using var tx = connection.BeginTransaction(deferred: false);
            version.Transaction = tx;
            var current = Convert.ToInt32(version.ExecuteScalar());
            if (current >= Migrations.Length)
                return;
            using var migrate = connection.CreateCommand();
            migrate.Transaction = tx;
            migrate.CommandText = Migrations[current] + $"PRAGMA user_version = {current + 1};";
            migrate.ExecuteNonQuery();
            tx.Commit();
        }
    }

    private const string SchemaV1 = """
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

    private const string SchemaV2 = """
        CREATE TABLE IF NOT EXISTS quarantine (
            id TEXT PRIMARY KEY,
            tenant_id TEXT NOT NULL,
            envelope TEXT NOT NULL,
            size INTEGER NOT NULL,
            quarantined_at TEXT NOT NULL,
            rule TEXT NOT NULL,
            reason TEXT NOT NULL,
            state TEXT NOT NULL,
            state_changed_at TEXT NOT NULL,
            released_as TEXT);
        CREATE INDEX IF NOT EXISTS quarantine_tenant ON quarantine(tenant_id, quarantined_at);

        CREATE TABLE IF NOT EXISTS quarantine_requests (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            quarantine_id TEXT NOT NULL,
            requested_at TEXT NOT NULL);

        CREATE TABLE IF NOT EXISTS policy_rules (
            tenant_id TEXT NOT NULL,
            name TEXT NOT NULL,
            rule TEXT NOT NULL,
            PRIMARY KEY (tenant_id, name));

        CREATE TABLE IF NOT EXISTS tenant_vips (
            tenant_id TEXT NOT NULL,
            display_name TEXT NOT NULL,
            PRIMARY KEY (tenant_id, display_name));

        ALTER TABLE trace_messages ADD COLUMN verdict TEXT;
        ALTER TABLE trace_messages ADD COLUMN findings TEXT;
        """;

    private const string SchemaV3 = """
        CREATE TABLE IF NOT EXISTS dkim_keys (
            tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            domain TEXT NOT NULL,
            selector TEXT NOT NULL,
            private_key TEXT NOT NULL,
            created_at TEXT NOT NULL,
            active INTEGER NOT NULL,
            PRIMARY KEY (domain, selector));
        """;

    /// <summary>A key published but not yet signing (`dkim rotate` before `--switch`): neither active nor retired.</summary>
    private const string SchemaV4 = """
        ALTER TABLE dkim_keys ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
        """;

    /// <summary>Each tenant's own TLS client certificate (PFX), presented when its mail goes back to Exchange Online.</summary>
    private const string SchemaV5 = """
        CREATE TABLE IF NOT EXISTS tenant_certificates (
            tenant_id TEXT PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            pfx BLOB NOT NULL,
            thumbprint TEXT NOT NULL,
            not_after TEXT NOT NULL,
            self_signed INTEGER NOT NULL,
            installed_at TEXT NOT NULL);
        """;
}
