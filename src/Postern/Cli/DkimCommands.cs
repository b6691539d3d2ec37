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

    /// <summary>The arguments and options show and rotate share.</summary>
    private sealed class DkimArguments
    {
        public Argument<string> Tenant { get; } = new("TENANT") { Description = "Tenant name or id" };

        public Argument<string> Domain { get; } = new("DOMAIN") { Description = "The tenant's domain" };

        public Option<string?> Zone { get; } = new("--delegation-zone")
        {
            Description = "The zone tenants delegate selectors to by CNAME (default: Postern:Signing:DkimDelegationZone of the configuration, else dkim.{ProductDomain})",
        };

        /// <summary>The server's configuration file: the delegation zone (and data directory) are the ones `serve` uses.</summary>
        public Option<FileInfo?> Config { get; } = new("--config") { Description = "The server's JSON configuration (section \"Postern\"), as given to postern serve" };

        public void AddTo(Command command)
        {
            command.Add(Tenant);
            command.Add(Domain);
            command.Add(Zone);
            command.Add(Config);
        }

        /// <summary>
        /// Settings from the same sources as `serve` (--config, then POSTERN__… variables, then an explicit --data-dir),
        /// so the zone printed is the one the operator's server is configured with, not a built-in default.
        /// </summary>
        public PosternOptions Options(CliContext cli, ParseResult result)
        {
            var options = ServeCommand.Load(result.GetValue(Config), result.GetResult(cli.DataDir) is { Implicit: false } ? result.GetValue(cli.DataDir) : null);
            if (options.Validate().FirstOrDefault() is { } problem)
                throw new PosternException(problem);
            return options;
        }

        public string DelegationZone(ParseResult result, PosternOptions options) =>
            result.GetValue(Zone) is { } zone
                ? DomainName.Normalize(zone.TrimEnd('.')) ?? throw new PosternException($"--delegation-zone '{zone}' is not a domain name")
                : options.Signing.ResolveDelegationZone(options.ProductDomain);

        public (PosternDatabase, Tenant, ProtectedDomain) Resolve(ParseResult result, PosternOptions options)
        {
            var database = CliContext.OpenDatabase(options.DataDir);
            var store = new TenantStore(database);
            var t = store.GetTenant(result.GetValue(Tenant)!);
            var name = DomainName.Parse(result.GetValue(Domain)!);
            var d = store.ListDomains(t).FirstOrDefault(x => x.Domain == name)
                ?? throw new PosternException($"tenant '{t.Name}' has no domain '{name}'");
            return (database, t, d);
        }
    }

    private static Command Show(CliContext cli)
    {
        var args = new DkimArguments();
        var command = new Command("show", "Print the DNS records to publish for the domain's DKIM keys: the TXT record, or the CNAME delegation and the operator's TXT record");
        args.AddTo(command);
        command.SetAction(cli.Run(result =>
        {
            var options = args.Options(cli, result);
            var zone = args.DelegationZone(result, options);
            var (database, t, d) = args.Resolve(result, options);
            var keys = new SigningKeyStore(database).List(t.Id).Where(k => k.Domain == d.Domain).ToArray();
            if (keys.Length == 0)
                throw new PosternException($"domain '{d.Domain}' has no DKIM key yet; make one with: postern dkim rotate {t.Name} {d.Domain}");
            // The active key first, then the retired ones newest first: the order an operator acts on them.
            foreach (var key in keys.OrderByDescending(k => k.Active).ThenByDescending(k => k.CreatedAt))
                Print(cli, key, zone);
            return 0;
        }));
        return command;
    }

    private static Command Rotate(CliContext cli)
    {
        var args = new DkimArguments();
        var command = new Command("rotate", "Make a new DKIM key (new selector) and sign with it from now on");
        args.AddTo(command);
        command.SetAction(cli.Run(result =>
        {
            var options = args.Options(cli, result);
            var zone = args.DelegationZone(result, options);
            var (database, t, d) = args.Resolve(result, options);
            var key = new SigningKeyStore(database).Rotate(t, d);
            cli.Out.WriteLine($"New DKIM key for '{d.Domain}' (selector {key.Selector}); outbound mail is signed with it from now on.");
            cli.Out.WriteLine("Publish its record now; keep the previous selector's record until mail it signed has been delivered:");
            Print(cli, key, zone);
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// One key's records: the TXT record the tenant can publish itself, or the CNAME the tenant publishes to delegate
    /// the selector together with the TXT record the operator publishes at the CNAME's target. Both halves of the
    /// delegation are printed because neither works without the other.
    /// </summary>
    private static void Print(CliContext cli, DkimKeyEntry key, string zone)
    {
        var record = key.DnsRecord;
        var state = key.Active ? "active, signs outbound mail" : "retired, no longer signs";
        cli.Out.WriteLine($"Selector {key.Selector}: {state} ({key.Key.KeyType} {key.Key.KeyBits} bits, made {key.CreatedAt:u})");
        cli.Out.WriteLine("  Either the tenant publishes the key:");
        cli.Out.WriteLine($"    {record.ZoneFileLine}");
        cli.Out.WriteLine($"  or the tenant delegates the selector to {zone}:");
        cli.Out.WriteLine($"    {record.CnameZoneFileLine(zone)}");
        cli.Out.WriteLine($"  and the operator publishes in {zone}:");
        cli.Out.WriteLine($"    {record.DelegatedZoneFileLine(zone)}");
    }
}
