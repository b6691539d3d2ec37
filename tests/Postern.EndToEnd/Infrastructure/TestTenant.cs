using System.Text.RegularExpressions;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>A tenant registered through the CLI, with the secrets the tests need to send as it.</summary>
public sealed record TestTenant(string Name, string TenantId, IReadOnlyList<string> Domains, string RelayKey, string LoopToken)
{
    public string Domain => Domains[0];

    /// <summary>The header line the Exchange Online redirect rule adds.</summary>
    public string KeyHeader => $"X-Postern-Key: {RelayKey}";
}

public static partial class TenantSetup
{
    /// <summary>
    /// `tenant add`, `domain add` (with the given MTAs, first preferred), `relay enable` (key = last stdout line)
    /// and `tenant show` (line "Loop token: HEX"). Every step must succeed.
    /// </summary>
    public static async Task<TestTenant> CreateTenantAsync(this PosternProcess postern, string name, string domain, params string[] mtas)
    {
        var tenantId = Guid.NewGuid().ToString();
        (await postern.RunCliAsync("tenant", "add", name, "--tenant-id", tenantId, "--region", "eu")).EnsureSuccess();
        await postern.AddDomainAsync(name, domain, mtas);
        var enable = (await postern.RunCliAsync("relay", "enable", name)).EnsureSuccess();
        var key = enable.LastLine;
        Assert.False(string.IsNullOrWhiteSpace(key), $"relay enable printed no key: {enable}");
        var show = (await postern.RunCliAsync("tenant", "show", name)).EnsureSuccess();
        var token = LoopTokenLine().Match(show.StdOut);
        Assert.True(token.Success, $"tenant show has no 'Loop token: <hex>' line: {show}");
        return new TestTenant(name, tenantId, [domain], key, token.Groups[1].Value);
    }

    public static async Task AddDomainAsync(this PosternProcess postern, string tenant, string domain, params string[] mtas)
    {
        var args = new List<string> { "domain", "add", tenant, domain };
        foreach (var mta in mtas)
        {
            args.Add("--mta");
            args.Add(mta);
        }
        (await postern.RunCliAsync([.. args])).EnsureSuccess();
    }

    /// <summary>Waits until the running server has loaded the configuration generation the database holds now.</summary>
    public static async Task WaitForConfigurationLoadedAsync(this PosternProcess postern)
    {
        long generation;
        using (var connection = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(postern.DataDirectory, "postern.db")};Pooling=False"))
        {
            connection.Open();
            using var command = connection.CreateCommand();
            command.CommandText = "SELECT generation FROM config_generation WHERE id = 1";
            generation = Convert.ToInt64(command.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        }
        await Poll.UntilAsync(() => ReloadedGeneration().Matches(postern.ReadLog())
                .Any(m => long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= generation),
            TimeSpan.FromSeconds(15), $"the server to load configuration generation {generation}", () => postern.ReadLogTail());
    }

    [GeneratedRegex(@"Configuration reloaded \(generation (\d+),")]
    private static partial Regex ReloadedGeneration();

    [GeneratedRegex(@"^\s*Loop token:\s*([0-9A-Fa-f]+)\s*$", RegexOptions.Multiline)]
    private static partial Regex LoopTokenLine();
}
