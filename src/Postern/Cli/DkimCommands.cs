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
        var command = new Command("show", "Print the domain's DKIM keys (active, pending, retired) with the DNS records to publish: the TXT record, or the CNAME delegation and the operator's TXT record");
        args.AddTo(command);
        command.SetAction(cli.Run(result =>
        {
            var options = args.Options(cli, result);
            var zone = args.DelegationZone(result, options);
            var (database, t, d) = args.Resolve(result, options);
            var keys = new SigningKeyStore(database).List(t.Id).Where(k => k.Domain == d.Domain).ToArray();
            if (keys.Length == 0)
                throw new PosternException($"domain '{d.Domain}' has no DKIM key yet; make one with: postern dkim rotate {t.Name} {d.Domain}");
            // The key that signs first, then the one about to sign, then the retired ones newest first: the order an operator acts on them.
            foreach (var key in keys.OrderBy(k => k.State switch { DkimKeyState.Active => 0, DkimKeyState.Pending => 1, _ => 2 }).ThenByDescending(k => k.CreatedAt))
                Print(cli, key, zone);
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// Rotation in two steps, so a key never signs before its record can be in DNS (a signature whose key
    /// cannot be found fails DKIM, and with it DMARC where SPF does not align): rotate makes a pending key and
    /// prints its records; --switch, once they are published, makes it sign and retires the previous key.
    /// The domain's first key waits for --switch too: one procedure, and never a signature receivers cannot check.
    /// </summary>
    private static Command Rotate(CliContext cli)
    {
        var args = new DkimArguments();
        var switchOver = new Option<bool>("--switch") { Description = "Step 2: sign with the pending key (after its record is published) and retire the previous one" };
        var command = new Command("rotate", "Rotate the domain's DKIM key in two steps: make a new key to publish, then --switch to sign with it");
        args.AddTo(command);
        command.Add(switchOver);
        command.SetAction(cli.Run(result =>
        {
            var options = args.Options(cli, result);
            var zone = args.DelegationZone(result, options);
            var (database, t, d) = args.Resolve(result, options);
            var store = new SigningKeyStore(database);
            if (result.GetValue(switchOver))
            {
                var (active, retired) = store.Switch(t, d);
                cli.Out.WriteLine($"Outbound mail from '{d.Domain}' is signed with selector {active} from now on.");
                if (retired is not null)
                    cli.Out.WriteLine($"Selector {retired} is retired; keep its record published until mail it signed has been delivered.");
                return 0;
            }
            var key = store.AddPending(t, d);
            var current = store.List(t.Id).FirstOrDefault(k => k.Domain == d.Domain && k.Active);
            var signing = current is null ? "outbound mail stays unsigned" : $"selector {current.Selector} keeps signing";
            cli.Out.WriteLine($"New DKIM key for '{d.Domain}' (selector {key.Selector}), pending: {signing} until you switch.");
            Print(cli, key, zone);
            cli.Out.WriteLine($"Publish one of these records, wait until it is visible in DNS, then run: postern dkim rotate {t.Name} {d.Domain} --switch");
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
        var state = key.State switch
        {
            DkimKeyState.Active => "active, signs outbound mail",
            DkimKeyState.Pending => "pending, publish its record, then `dkim rotate --switch` makes it sign",
            _ => "retired, no longer signs",
        };
        cli.Out.WriteLine($"Selector {key.Selector}: {state} ({key.Key.KeyType} {key.Key.KeyBits} bits, made {key.CreatedAt:u})");
        cli.Out.WriteLine("  Either the tenant publishes the key:");
        cli.Out.WriteLine($"    {record.ZoneFileLine}");
        cli.Out.WriteLine($"  or the tenant delegates the selector to {zone}:");
        cli.Out.WriteLine($"    {record.CnameZoneFileLine(zone)}");
        cli.Out.WriteLine($"  and the operator publishes in {zone}:");
        cli.Out.WriteLine($"    {record.DelegatedZoneFileLine(zone)}");
    }
}
