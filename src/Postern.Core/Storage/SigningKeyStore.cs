using System.Globalization;
using Postern.Core.Authentication;
using Postern.Core.Tenants;

namespace Postern.Core.Storage;

/// <summary>A tenant domain's DKIM key: the active one signs, older ones stay listed until removed from DNS.</summary>
public sealed record DkimKeyEntry(Guid TenantId, string Domain, string Selector, DkimSigningKey Key, DateTimeOffset CreatedAt, bool Active)
{
    public DkimDnsRecord DnsRecord => new(Domain, Selector, Key.KeyType, Key.PublicKeyBase64);
}

/// <summary>
/// DKIM keys per tenant and domain, in the database (readable only by Postern's user with the rest of
/// the data directory). Rotation makes a new selector active; the old key is kept so DNS can overlap.
/// </summary>
public sealed class SigningKeyStore(PosternDatabase database)
{
    public IReadOnlyList<DkimKeyEntry> List(Guid? tenantId = null)
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT tenant_id, domain, selector, private_key, created_at, active FROM dkim_keys" +
            (tenantId is null ? "" : " WHERE tenant_id = $t") + " ORDER BY domain, created_at";
        if (tenantId is { } id)
            command.Parameters.AddWithValue("$t", id.ToString());
        var result = new List<DkimKeyEntry>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            result.Add(new DkimKeyEntry(Guid.Parse(reader.GetString(0)), reader.GetString(1), reader.GetString(2), DkimSigningKey.FromPem(reader.GetString(3)),
                DateTimeOffset.Parse(reader.GetString(4), CultureInfo.InvariantCulture), reader.GetInt64(5) != 0));
        }
        return result;
    }

    /// <summary>Makes a new key for the domain and makes it the active one.</summary>
    public DkimKeyEntry Rotate(Tenant tenant, ProtectedDomain domain)
    {
        if (domain.TenantId != tenant.Id)
            throw new PosternException($"domain '{domain.Domain}' is not a domain of tenant '{tenant.Name}'");
        var now = DateTimeOffset.UtcNow;
        // Date for the admin reading DNS, random part so two rotations on one day never collide.
        var selector = $"postern{now:yyyyMMdd}-{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(3))}";
        var key = DkimSigningKey.GenerateRsa(2048);
        using var connection = database.Open();
        using var tx = connection.BeginTransaction();
        using (var deactivate = connection.CreateCommand())
        {
            deactivate.Transaction = tx;
            deactivate.CommandText = "UPDATE dkim_keys SET active = 0 WHERE domain = $d";
            deactivate.Parameters.AddWithValue("$d", domain.Domain);
            deactivate.ExecuteNonQuery();
        }
        using (var insert = connection.CreateCommand())
        {
            insert.Transaction = tx;
            insert.CommandText = "INSERT INTO dkim_keys (tenant_id, domain, selector, private_key, created_at, active) VALUES ($t, $d, $s, $k, $c, 1)";
            insert.Parameters.AddWithValue("$t", tenant.Id.ToString());
            insert.Parameters.AddWithValue("$d", domain.Domain);
            insert.Parameters.AddWithValue("$s", selector);
            insert.Parameters.AddWithValue("$k", key.ExportPem());
            insert.Parameters.AddWithValue("$c", TenantStore.Format(now));
            insert.ExecuteNonQuery();
        }
        using (var bump = connection.CreateCommand())
        {
            bump.Transaction = tx;
            bump.CommandText = "UPDATE config_generation SET generation = generation + 1 WHERE id = 1";
            bump.ExecuteNonQuery();
        }
        tx.Commit();
        return new DkimKeyEntry(tenant.Id, domain.Domain, selector, key, now, true);
    }
}
