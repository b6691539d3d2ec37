using System.Globalization;

namespace Postern.Core.Storage;

/// <summary>A tenant's certificate as stored: its name, the PFX (certificate and private key) and when it was put in place.</summary>
public sealed record StoredTenantCertificate(Guid TenantId, string Name, byte[] Pfx, string Thumbprint, DateTimeOffset NotAfter, bool SelfSigned, DateTimeOffset InstalledAt);

/// <summary>
/// Tenants' client certificates, in the database (not one node's disk: the cluster shares them), one per tenant.
/// Replacing one keeps its name: the tenant's inbound connector holds that one name.
/// </summary>
public sealed class TenantCertificateStore(PosternDatabase database)
{
    /// <summary>Every tenant's certificate: tenant id and when it expires (for metrics and doctor).</summary>
    public IReadOnlyList<(Guid TenantId, DateTimeOffset NotAfter)> Expiries()
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT tenant_id, not_after FROM tenant_certificates";
        using var reader = command.ExecuteReader();
        var list = new List<(Guid, DateTimeOffset)>();
        while (reader.Read())
            list.Add((Guid.Parse(reader.GetString(0)), DateTimeOffset.Parse(reader.GetString(1), CultureInfo.InvariantCulture)));
        return list;
    }

    public StoredTenantCertificate? Find(Guid tenantId)
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT name, pfx, thumbprint, not_after, self_signed, installed_at FROM tenant_certificates WHERE tenant_id = $id";
        command.Parameters.AddWithValue("$id", tenantId.ToString());
        using var reader = command.ExecuteReader();
        if (!reader.Read())
            return null;
        return new StoredTenantCertificate(tenantId, reader.GetString(0), (byte[])reader[1], reader.GetString(2),
            DateTimeOffset.Parse(reader.GetString(3), CultureInfo.InvariantCulture), reader.GetInt64(4) != 0,
            DateTimeOffset.Parse(reader.GetString(5), CultureInfo.InvariantCulture));
    }

    /// <summary>Puts the certificate in place (replacing the tenant's earlier one) and bumps the configuration generation, so running nodes take it.</summary>
    public void Save(StoredTenantCertificate certificate)
    {
        using var connection = database.Open();
        using var tx = connection.BeginTransaction();
        using (var command = connection.CreateCommand())
        {
            command.Transaction = tx;
            command.CommandText = """
                INSERT INTO tenant_certificates (tenant_id, name, pfx, thumbprint, not_after, self_signed, installed_at)
                VALUES ($id, $name, $pfx, $thumbprint, $notAfter, $selfSigned, $installedAt)
                ON CONFLICT (tenant_id) DO UPDATE SET name = excluded.name, pfx = excluded.pfx, thumbprint = excluded.thumbprint,
                    not_after = excluded.not_after, self_signed = excluded.self_signed, installed_at = excluded.installed_at
                """;
            command.Parameters.AddWithValue("$id", certificate.TenantId.ToString());
            command.Parameters.AddWithValue("$name", certificate.Name);
            command.Parameters.AddWithValue("$pfx", certificate.Pfx);
            command.Parameters.AddWithValue("$thumbprint", certificate.Thumbprint);
            command.Parameters.AddWithValue("$notAfter", certificate.NotAfter.ToString("O", CultureInfo.InvariantCulture));
            command.Parameters.AddWithValue("$selfSigned", certificate.SelfSigned ? 1 : 0);
            command.Parameters.AddWithValue("$installedAt", certificate.InstalledAt.ToString("O", CultureInfo.InvariantCulture));
            command.ExecuteNonQuery();
        }
        using (var bump = connection.CreateCommand())
        {
            bump.Transaction = tx;
            bump.CommandText = "UPDATE config_generation SET generation = generation + 1 WHERE id = 1";
            bump.ExecuteNonQuery();
        }
        tx.Commit();
    }
}
