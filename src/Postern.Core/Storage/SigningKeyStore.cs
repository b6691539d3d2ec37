using System.Globalization;
using Microsoft.Data.Sqlite;
using Postern.Core.Authentication;
using Postern.Core.Tenants;

namespace Postern.Core.Storage;

/// <summary>Where a DKIM key is in its life: published first, then signing, then kept listed until its record is removed.</summary>
public enum DkimKeyState
{
    /// <summary>Made by `dkim rotate`; its record is to be published, and it does not sign until `dkim rotate --switch`.</summary>
    Pending,

    /// <summary>Signs the domain's outbound mail; at most one per domain.</summary>
    Active,

    /// <summary>Signed once; its record stays published until the mail it signed has been delivered.</summary>
    Retired,
}

/// <summary>A tenant domain's DKIM key and its state.</summary>
public sealed record DkimKeyEntry(Guid TenantId, string Domain, string Selector, DkimSigningKey Key, DateTimeOffset CreatedAt, DkimKeyState State)
{
    public bool Active => State == DkimKeyState.Active;

    public DkimDnsRecord DnsRecord => new(Domain, Selector, Key.KeyType, Key.PublicKeyBase64);
}

/// <summary>
/// DKIM keys per tenant and domain, in the database (readable only by Postern's user with the rest of
/// the data directory). Rotation is two steps so a key never signs before its record can be in DNS:
/// <see cref="AddPending"/> makes a key to publish, <see cref="Switch"/> makes it sign and retires the old one.
/// </summary>
public sealed class SigningKeyStore(PosternDatabase database)
{
    public IReadOnlyList<DkimKeyEntry> List(Guid? tenantId = null)
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT tenant_id, domain, selector, private_key, created_at, active, pending FROM dkim_keys" +
            (tenantId is null ? "" : " WHERE tenant_id = $t") + " ORDER BY domain, created_at";
        if (tenantId is { } id)
            command.Parameters.AddWithValue("$t", id.ToString());
        var result = new List<DkimKeyEntry>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            var state = reader.GetInt64(5) != 0 ? DkimKeyState.Active : reader.GetInt64(6) != 0 ? DkimKeyState.Pending : DkimKeyState.Retired;
            result.Add(new DkimKeyEntry(Guid.Parse(reader.GetString(0)), reader.GetString(1), reader.GetString(2), DkimSigningKey.FromPem(reader.GetString(3)),
                DateTimeOffset.Parse(reader.GetString(4), CultureInfo.InvariantCulture), state));
        }
        return result;
    }

    /// <summary>
    /// Makes a new key for the domain, pending: its record can be published, but the active key (if any) keeps
    /// signing until <see cref="Switch"/>. Refused while another key is pending, so the record the admin is
    /// publishing is always the one that will sign.
    /// </summary>
    public DkimKeyEntry AddPending(Tenant tenant, ProtectedDomain domain)
    {
        if (domain.TenantId != tenant.Id)
            throw new PosternException($"domain '{domain.Domain}' is not a domain of tenant '{tenant.Name}'");
        var now = DateTimeOffset.UtcNow;
        // Date for the admin reading DNS, random part so two rotations on one day never collide.
        var selector = $"postern{now:yyyyMMdd}-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(3))}";
        var key = DkimSigningKey.GenerateRsa(2048);
        using var connection = database.Open();
        // Immediate: two rotate commands at once must not both find no pending key.
        using var tx = connection.BeginTransaction(deferred: false);
        if (Pending(connection, tx, domain) is { } pending)
            throw new PosternException($"domain '{domain.Domain}' already has a pending DKIM key (selector {pending}); publish its record (postern dkim show {tenant.Name} {domain.Domain}), then: postern dkim rotate {tenant.Name} {domain.Domain} --switch");
        using (var insert = connection.CreateCommand())
        {
            insert.Transaction = tx;
            insert.CommandText = "INSERT INTO dkim_keys (tenant_id, domain, selector, private_key, created_at, active, pending) VALUES ($t, $d, $s, $k, $c, 0, 1)";
            insert.Parameters.AddWithValue("$t", tenant.Id.ToString());
            insert.Parameters.AddWithValue("$d", domain.Domain);
            insert.Parameters.AddWithValue("$s", selector);
            insert.Parameters.AddWithValue("$k", key.ExportPem());
            insert.Parameters.AddWithValue("$c", TenantStore.Format(now));
            insert.ExecuteNonQuery();
        }
        // The server reloads its keys; the pending one is listed but never signs.
        BumpGeneration(connection, tx);
        tx.Commit();
        return new DkimKeyEntry(tenant.Id, domain.Domain, selector, key, now, DkimKeyState.Pending);
    }

    /// <summary>
    /// Makes the domain's pending key the one that signs and retires the previously active key. The running
    /// server picks it up with the configuration generation, without a restart.
    /// </summary>
    /// <returns>The selector now signing and the selector retired (null for the domain's first key).</returns>
    public (string Active, string? Retired) Switch(Tenant tenant, ProtectedDomain domain)
    {
        if (domain.TenantId != tenant.Id)
            throw new PosternException($"domain '{domain.Domain}' is not a domain of tenant '{tenant.Name}'");
        using var connection = database.Open();
        using var tx = connection.BeginTransaction(deferred: false);
        var pending = Pending(connection, tx, domain)
            ?? throw new PosternException($"domain '{domain.Domain}' has no pending DKIM key to switch to; make one with: postern dkim rotate {tenant.Name} {domain.Domain}");
        string? retired;
        using (var current = connection.CreateCommand())
        {
            current.Transaction = tx;
            current.CommandText = "SELECT selector FROM dkim_keys WHERE domain = $d AND active = 1";
            current.Parameters.AddWithValue("$d", domain.Domain);
            retired = current.ExecuteScalar() as string;
        }
        using (var update = connection.CreateCommand())
        {
            update.Transaction = tx;
            update.CommandText = "UPDATE dkim_keys SET active = (selector = $s), pending = 0 WHERE domain = $d AND (active = 1 OR selector = $s)";
            update.Parameters.AddWithValue("$d", domain.Domain);
            update.Parameters.AddWithValue("$s", pending);
            update.ExecuteNonQuery();
        }
        BumpGeneration(connection, tx);
        tx.Commit();
        return (pending, retired);
    }

    /// <summary>The selector of the domain's pending key, if there is one.</summary>
    private static string? Pending(SqliteConnection connection, SqliteTransaction tx, ProtectedDomain domain)
    {
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = "SELECT selector FROM dkim_keys WHERE domain = $d AND pending = 1 ORDER BY created_at DESC LIMIT 1";
        command.Parameters.AddWithValue("$d", domain.Domain);
        return command.ExecuteScalar() as string;
    }

    private static void BumpGeneration(SqliteConnection connection, SqliteTransaction tx)
    {
        using var bump = connection.CreateCommand();
        bump.Transaction = tx;
        bump.CommandText = "UPDATE config_generation SET generation = generation + 1 WHERE id = 1";
        bump.ExecuteNonQuery();
    }
}
