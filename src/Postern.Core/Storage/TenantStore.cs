using System.Globalization;
using Microsoft.Data.Sqlite;
using Postern.Core.Tenants;

namespace Postern.Core.Storage;

/// <summary>Reads and changes tenants and their domains. Every change bumps the configuration generation,
/// which running servers watch to reload without restart.</summary>
public sealed class TenantStore(PosternDatabase database)
{
    public Tenant AddTenant(string name, Guid id, string region, bool createdBefore2023)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 100)
            throw new PosternException($"'{name}' is not a valid tenant name (1 to 100 characters)");
        if (Guid.TryParse(name, out _))
            throw new PosternException($"'{name}' is not a valid tenant name: a name cannot be a GUID");
        if (!Region.IsKnown(region))
            throw new PosternException($"'{region}' is not a region ({string.Join(", ", Region.All)})");
        if (id == Guid.Empty)
            throw new PosternException($"'{id}' is not a valid tenant id");
        var tenant = new Tenant
        {
            Id = id,
            Name = name.Trim(),
            Region = region,
            CreatedBefore2023 = createdBefore2023,
            LoopToken = LoopToken.Generate(),
            CreatedAt = DateTimeOffset.UtcNow,
        };
        using var connection = database.Open();
        using var tx = connection.BeginTransaction();
        if (FindTenant(connection, tenant.Name) is not null)
            throw new PosternException($"a tenant named '{tenant.Name}' already exists");
        if (FindTenant(connection, id.ToString()) is not null)
            throw new PosternException($"a tenant with id '{id}' already exists");
        Execute(connection, tx, """
            INSERT INTO tenants (id, name, region, created_before_2023, outbound, loop_token, created_at)
            VALUES ($id, $name, $region, $old, $outbound, $token, $created)
            """,
            ("$id", id.ToString()), ("$name", tenant.Name), ("$region", region), ("$old", createdBefore2023 ? 1 : 0),
            ("$outbound", OutboundModes.Format(tenant.Outbound)), ("$token", tenant.LoopToken), ("$created", Format(tenant.CreatedAt)));
        BumpGeneration(connection, tx);
        tx.Commit();
        return tenant;
    }

    /// <summary>The tenant named by name or id; throws naming the value when there is none.</summary>
    public Tenant GetTenant(string nameOrId)
    {
        using var connection = database.Open();
        return FindTenant(connection, nameOrId) ?? throw new PosternException($"no tenant '{nameOrId}'");
    }

    public IReadOnlyList<Tenant> ListTenants()
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT * FROM tenants ORDER BY name";
        return ReadTenants(command);
    }

    /// <summary>Saves the changed settings and secrets of an existing tenant.</summary>
    public void UpdateTenant(Tenant tenant)
    {
        using var connection = database.Open();
        using var tx = connection.BeginTransaction();
        var rows = Execute(connection, tx, """
            UPDATE tenants SET region = $region, created_before_2023 = $old, outbound = $outbound,
                relay_key_hash = $key, previous_relay_key_hash = $prevKey, previous_relay_key_expires = $prevExpires,
                loop_token = $token, previous_loop_token = $prevToken
            WHERE id = $id
            """,
            ("$id", tenant.Id.ToString()), ("$region", tenant.Region), ("$old", tenant.CreatedBefore2023 ? 1 : 0),
            ("$outbound", OutboundModes.Format(tenant.Outbound)), ("$key", tenant.RelayKeyHash),
            ("$prevKey", tenant.PreviousRelayKeyHash), ("$prevExpires", tenant.PreviousRelayKeyExpires is { } e ? Format(e) : null),
            ("$token", tenant.LoopToken), ("$prevToken", tenant.PreviousLoopToken));
        if (rows == 0)
            throw new PosternException($"no tenant '{tenant.Name}'");
        BumpGeneration(connection, tx);
        tx.Commit();
    }

    public ProtectedDomain AddDomain(Tenant tenant, string domain, IReadOnlyList<MtaAddress> mtas)
    {
        var normal = DomainName.Parse(domain);
        CheckMtaCount(normal, mtas);
        using var connection = database.Open();
        using var tx = connection.BeginTransaction();
        using (var find = connection.CreateCommand())
        {
            find.Transaction = tx;
            find.CommandText = "SELECT t.name FROM domains d JOIN tenants t ON t.id = d.tenant_id WHERE d.domain = $d";
            find.Parameters.AddWithValue("$d", normal);
            if (find.ExecuteScalar() is string owner)
                throw new PosternException($"domain '{normal}' already belongs to tenant '{owner}'");
        }
        Execute(connection, tx, "INSERT INTO domains (domain, tenant_id, mtas, created_at) VALUES ($d, $t, $m, $c)",
            ("$d", normal), ("$t", tenant.Id.ToString()), ("$m", FormatMtas(mtas)), ("$c", Format(DateTimeOffset.UtcNow)));
        BumpGeneration(connection, tx);
        tx.Commit();
        return new ProtectedDomain(normal, tenant.Id, mtas);
    }

    /// <summary>Names the first MTA past the third, the value the user has to drop.</summary>
    private static void CheckMtaCount(string domain, IReadOnlyList<MtaAddress> mtas)
    {
        if (mtas.Count > 3)
            throw new PosternException($"domain '{domain}': MTA '{mtas[3]}' is one too many; at most 3 are allowed (the first is used, the others are fallbacks)");
    }

    /// <summary>Replaces the MTAs of a domain the tenant already has.</summary>
    public ProtectedDomain SetDomainMtas(Tenant tenant, string domain, IReadOnlyList<MtaAddress> mtas)
    {
        var normal = DomainName.Parse(domain);
        CheckMtaCount(normal, mtas);
        using var connection = database.Open();
        using var tx = connection.BeginTransaction();
        var rows = Execute(connection, tx, "UPDATE domains SET mtas = $m WHERE domain = $d AND tenant_id = $t",
            ("$d", normal), ("$t", tenant.Id.ToString()), ("$m", FormatMtas(mtas)));
        if (rows == 0)
            throw new PosternException($"tenant '{tenant.Name}' has no domain '{normal}'");
        BumpGeneration(connection, tx);
        tx.Commit();
        return new ProtectedDomain(normal, tenant.Id, mtas);
    }

    public void RemoveDomain(Tenant tenant, string domain)
    {
        var normal = DomainName.Parse(domain);
        using var connection = database.Open();
        using var tx = connection.BeginTransaction();
        var rows = Execute(connection, tx, "DELETE FROM domains WHERE domain = $d AND tenant_id = $t",
            ("$d", normal), ("$t", tenant.Id.ToString()));
        if (rows == 0)
            throw new PosternException($"tenant '{tenant.Name}' has no domain '{normal}'");
        BumpGeneration(connection, tx);
        tx.Commit();
    }

    public IReadOnlyList<ProtectedDomain> ListDomains(Tenant? tenant = null)
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = tenant is null
            ? "SELECT domain, tenant_id, mtas FROM domains ORDER BY domain"
            : "SELECT domain, tenant_id, mtas FROM domains WHERE tenant_id = $t ORDER BY domain";
        if (tenant is not null)
            command.Parameters.AddWithValue("$t", tenant.Id.ToString());
        var result = new List<ProtectedDomain>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
            result.Add(new ProtectedDomain(reader.GetString(0), Guid.Parse(reader.GetString(1)), ParseMtas(reader.GetString(2))));
        return result;
    }

    /// <summary>Every tenant's own policy rules, in priority order.</summary>
    public IReadOnlyDictionary<Guid, IReadOnlyList<Policy.PolicyRule>> ListPolicyRules()
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT tenant_id, rule FROM policy_rules";
        var rules = new List<(Guid, Policy.PolicyRule)>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
            rules.Add((Guid.Parse(reader.GetString(0)), System.Text.Json.JsonSerializer.Deserialize<Policy.PolicyRule>(reader.GetString(1), PolicyJson)!));
        return rules.GroupBy(r => r.Item1).ToDictionary(g => g.Key, g => (IReadOnlyList<Policy.PolicyRule>)g.Select(r => r.Item2).OrderBy(r => r.Priority).ToArray());
    }

    /// <summary>Adds or replaces (by name) a policy rule of the tenant.</summary>
    public void SetPolicyRule(Tenant tenant, Policy.PolicyRule rule)
    {
        if (string.IsNullOrWhiteSpace(rule.Name))
            throw new PosternException("a policy rule needs a name");
        using var connection = database.Open();
        using var tx = connection.BeginTransaction();
        Execute(connection, tx, "INSERT OR REPLACE INTO policy_rules (tenant_id, name, rule) VALUES ($t, $n, $r)",
            ("$t", tenant.Id.ToString()), ("$n", rule.Name), ("$r", System.Text.Json.JsonSerializer.Serialize(rule, PolicyJson)));
        BumpGeneration(connection, tx);
        tx.Commit();
    }

    public void RemovePolicyRule(Tenant tenant, string name)
    {
        using var connection = database.Open();
        using var tx = connection.BeginTransaction();
        if (Execute(connection, tx, "DELETE FROM policy_rules WHERE tenant_id = $t AND name = $n", ("$t", tenant.Id.ToString()), ("$n", name)) == 0)
            throw new PosternException($"tenant '{tenant.Name}' has no policy rule '{name}'");
        BumpGeneration(connection, tx);
        tx.Commit();
    }

    /// <summary>Every tenant's VIP display names.</summary>
    public IReadOnlyDictionary<Guid, IReadOnlyList<string>> ListVips()
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT tenant_id, display_name FROM tenant_vips ORDER BY display_name";
        var vips = new List<(Guid, string)>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
            vips.Add((Guid.Parse(reader.GetString(0)), reader.GetString(1)));
        return vips.GroupBy(v => v.Item1).ToDictionary(g => g.Key, g => (IReadOnlyList<string>)g.Select(v => v.Item2).ToArray());
    }

    public void SetVips(Tenant tenant, IReadOnlyList<string> displayNames)
    {
        using var connection = database.Open();
        using var tx = connection.BeginTransaction();
        Execute(connection, tx, "DELETE FROM tenant_vips WHERE tenant_id = $t", ("$t", tenant.Id.ToString()));
        foreach (var name in displayNames.Select(n => n.Trim()).Where(n => n.Length > 0).Distinct())
            Execute(connection, tx, "INSERT INTO tenant_vips (tenant_id, display_name) VALUES ($t, $n)", ("$t", tenant.Id.ToString()), ("$n", name));
        BumpGeneration(connection, tx);
        tx.Commit();
    }

    internal static readonly System.Text.Json.JsonSerializerOptions PolicyJson = new(System.Text.Json.JsonSerializerDefaults.Web)
    {
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter(System.Text.Json.JsonNamingPolicy.KebabCaseLower) },
    };

    /// <summary>A number that changes whenever tenants or domains change.</summary>
    public long ReadGeneration()
    {
        using var connection = database.Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT generation FROM config_generation WHERE id = 1";
        return Convert.ToInt64(command.ExecuteScalar(), CultureInfo.InvariantCulture);
    }

    private static Tenant? FindTenant(SqliteConnection connection, string nameOrId)
    {
        using var command = connection.CreateCommand();
        if (Guid.TryParse(nameOrId, out var id))
        {
            command.CommandText = "SELECT * FROM tenants WHERE id = $id";
            command.Parameters.AddWithValue("$id", id.ToString());
        }
        else
        {
            command.CommandText = "SELECT * FROM tenants WHERE name = $name";
            command.Parameters.AddWithValue("$name", nameOrId.Trim());
        }
        return ReadTenants(command).FirstOrDefault();
    }

    private static List<Tenant> ReadTenants(SqliteCommand command)
    {
        var result = new List<Tenant>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            result.Add(new Tenant
            {
                Id = Guid.Parse(reader.GetString(reader.GetOrdinal("id"))),
                Name = reader.GetString(reader.GetOrdinal("name")),
                Region = reader.GetString(reader.GetOrdinal("region")),
                CreatedBefore2023 = reader.GetInt64(reader.GetOrdinal("created_before_2023")) != 0,
                Outbound = OutboundModes.Parse(reader.GetString(reader.GetOrdinal("outbound"))),
                RelayKeyHash = reader["relay_key_hash"] as byte[],
                PreviousRelayKeyHash = reader["previous_relay_key_hash"] as byte[],
                PreviousRelayKeyExpires = reader["previous_relay_key_expires"] is string e ? DateTimeOffset.Parse(e, CultureInfo.InvariantCulture) : null,
                LoopToken = reader.GetString(reader.GetOrdinal("loop_token")),
                PreviousLoopToken = reader["previous_loop_token"] as string,
                CreatedAt = DateTimeOffset.Parse(reader.GetString(reader.GetOrdinal("created_at")), CultureInfo.InvariantCulture),
            });
        }
        return result;
    }

    private static string FormatMtas(IReadOnlyList<MtaAddress> mtas) => string.Join(' ', mtas.Select(m => m.ToString()));

    private static IReadOnlyList<MtaAddress> ParseMtas(string text) =>
        text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(MtaAddress.Parse).ToArray();

    private static void BumpGeneration(SqliteConnection connection, SqliteTransaction tx) =>
        Execute(connection, tx, "UPDATE config_generation SET generation = generation + 1 WHERE id = 1");

    private static int Execute(SqliteConnection connection, SqliteTransaction tx, string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = connection.CreateCommand();
        command.Transaction = tx;
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return command.ExecuteNonQuery();
    }

    internal static string Format(DateTimeOffset value) => value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);
}
