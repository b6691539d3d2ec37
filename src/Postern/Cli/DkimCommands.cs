using System.CommandLine;
using Postern.Core;
using Postern.Core.Configuration;
using Postern.Core.Storage;
using Postern.Core.Tenants;

namespace Postern.Cli;

/// <summary>`postern dkim show|rotate`: the keys Postern signs a tenant's outbound mail with.</summary>
public static class DkimCommands
{
    public static Command Create(CliContext cli)
    {
        var dkim = new Command("dkim", "DKIM keys for signing a tenant's outbound mail");
        dkim.Add(Show(cli));
        dkim.Add(Rotate(cli));
        return dkim;
    }

    private static Option<string> Zone() => new("--delegation-zone")
    {
        Description = "The zone tenants delegate selectors to by CNAME (default dkim.postern.example)",
        DefaultValueFactory = _ => new SigningOptions().ResolveDelegationZone(new PosternOptions().ProductDomain),
    };

    private static Command Show(CliContext cli)
    {
        var tenant = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var domain = new Argument<string>("DOMAIN") { Description = "The tenant's domain" };
        var zone = Zone();
        var command = new Command("show", "Print the DNS records to publish for the domain's DKIM key(s)") { tenant, domain, zone };
        command.SetAction(cli.Run(result =>
        {
            var (t, d) = Resolve(cli, result, tenant, domain);
            var keys = new SigningKeyStore(cli.Database(result)).List(t.Id).Where(k => k.Domain == d.Domain).ToArray();
            if (keys.Length == 0)
                throw new PosternException($"domain '{d.Domain}' has no DKIM key yet; make one with: postern dkim rotate {t.Name} {d.Domain}");
            foreach (var key in keys.OrderByDescending(k => k.Active))
                Print(cli, key, result.GetValue(zone)!);
            return 0;
        }));
        return command;
    }

    private static Command Rotate(CliContext cli)
    {
        var tenant = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var domain = new Argument<string>("DOMAIN") { Description = "The tenant's domain" };
        var zone = Zone();
        var command = new Command("rotate", "Make a new DKIM key (new selector) and sign with it from now on") { tenant, domain, zone };
        command.SetAction(cli.Run(result =>
        {
            var (t, d) = Resolve(cli, result, tenant, domain);
            var key = new SigningKeyStore(cli.Database(result)).Rotate(t, d);
            cli.Out.WriteLine($"New DKIM key for '{d.Domain}' (selector {key.Selector}); outbound mail is signed with it from now on.");
            cli.Out.WriteLine("Publish the record before the old one is removed from DNS:");
            Print(cli, key, result.GetValue(zone)!);
            return 0;
        }));
        return command;
    }

    private static (Tenant, ProtectedDomain) Resolve(CliContext cli, ParseResult result, Argument<string> tenant, Argument<string> domain)
    {
        var store = cli.Tenants(result);
        var t = store.GetTenant(result.GetValue(tenant)!);
        var name = DomainName.Parse(result.GetValue(domain)!);
        var d = store.ListDomains(t).FirstOrDefault(x => x.Domain == name)
            ?? throw new PosternException($"tenant '{t.Name}' has no domain '{name}'");
        return (t, d);
    }

    private static void Print(CliContext cli, DkimKeyEntry key, string zone)
    {
        var record = key.DnsRecord;
        cli.Out.WriteLine($"Selector {key.Selector} ({(key.Active ? "active" : "retired")}, {key.Key.KeyType} {key.Key.KeyBits} bits, made {key.CreatedAt:u}):");
        cli.Out.WriteLine($"  TXT:   {record.ZoneFileLine}");
        cli.Out.WriteLine($"  or delegate with a CNAME: {record.CnameZoneFileLine(zone)}");
    }
}
