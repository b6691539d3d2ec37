using System.CommandLine;
using Postern.Core;
using Postern.Core.Authentication;
using Postern.Core.Configuration;
using Postern.Core.Delivery;
using Postern.Core.Tenants;

namespace Postern.Cli;

/// <summary>`postern domain add|resolve|list|remove`.</summary>
public static class DomainCommands
{
    /// <summary>Exchange Online's inbound endpoints; any other MX means another gateway sits in front.</summary>
    public const string M365MxSuffix = ".mail.protection.outlook.com";

    public static Command Create(CliContext cli)
    {
        var domain = new Command("domain", "Manage a tenant's protected domains and the MTAs their mail goes to");
        domain.Add(Add(cli));
        domain.Add(Resolve(cli));
        domain.Add(List(cli));
        domain.Add(Remove(cli));
        return domain;
    }

    private static Command Add(CliContext cli)
    {
        var tenant = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var name = new Argument<string>("DOMAIN") { Description = "An accepted domain of the tenant" };
        var mta = new Option<string[]>("--mta") { Description = "HOST[:PORT] to deliver to; up to 3, the first is used, the others are fallbacks", AllowMultipleArgumentsPerToken = false };
        var command = new Command("add", "Protect a domain of a tenant") { tenant, name, mta };
        command.SetAction(cli.Run(result =>
        {
            var store = cli.Tenants(result);
            var t = store.GetTenant(result.GetValue(tenant)!);
            var mtas = (result.GetValue(mta) ?? []).Select(MtaAddress.Parse).ToArray();
            var added = store.AddDomain(t, result.GetValue(name)!, mtas);
            cli.Out.WriteLine($"Domain '{added.Domain}' added to tenant '{t.Name}'" +
                (mtas.Length == 0 ? "." : $", delivering to {string.Join(", then ", mtas.Select(m => m.ToString()))}."));
            if (mtas.Length == 0)
                cli.Error.WriteLine($"warning: '{added.Domain}' has no MTA; its mail stays queued until you run: postern domain resolve {t.Name} {added.Domain}");
            return 0;
        }));
        return command;
    }

    private static Command Resolve(CliContext cli)
    {
        var tenant = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var name = new Argument<string>("DOMAIN") { Description = "The domain whose MX to look up" };
        var dns = new Option<string[]>("--dns") { Description = "DNS server ADDRESS[:PORT] to ask (default: the system's)" };
        var command = new Command("resolve", "Fill a domain's MTAs from its MX records (only when they are Microsoft 365's)") { tenant, name, dns };
        command.SetAction(cli.Run(async (result, cancellationToken) =>
        {
            var store = cli.Tenants(result);
            var t = store.GetTenant(result.GetValue(tenant)!);
            var domain = DomainName.Parse(result.GetValue(name)!);
            var resolver = new MxResolver(new DnsClientResolver(new DnsOptions { Servers = [.. result.GetValue(dns) ?? []] }));
            IReadOnlyList<string> hosts;
            try
            {
                hosts = await resolver.LookupMxAsync(domain, cancellationToken);
            }
            catch (DnsLookupFailedException ex)
            {
                throw new PosternException($"cannot look up the MX of '{domain}': {ex.Message}");
            }
            if (hosts.Count == 0)
                throw new PosternException($"'{domain}' has no MX record");
            var foreign = hosts.Where(h => !h.EndsWith(M365MxSuffix, StringComparison.OrdinalIgnoreCase)).ToArray();
            if (foreign.Length > 0)
            {
                cli.Error.WriteLine($"warning: the MX of '{domain}' is {string.Join(", ", foreign)}, not a Microsoft 365 endpoint (*{M365MxSuffix}).");
                cli.Error.WriteLine("warning: another gateway in front of Microsoft 365 would make a mail loop; the MTAs were not changed. Set them with --mta on 'domain add'.");
                return 1;
            }
            var mtas = hosts.Take(3).Select(h => new MtaAddress(h, MtaAddress.DefaultPort)).ToArray();
            var exists = store.ListDomains(t).Any(d => d.Domain == domain);
            if (exists)
                store.SetDomainMtas(t, domain, mtas);
            else
                store.AddDomain(t, domain, mtas);
            cli.Out.WriteLine($"Domain '{domain}' of tenant '{t.Name}' delivers to {string.Join(", then ", mtas.Select(m => m.ToString()))}.");
            return 0;
        }));
        return command;
    }

    private static Command List(CliContext cli)
    {
        var tenant = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var command = new Command("list", "List a tenant's domains and MTAs") { tenant };
        command.SetAction(cli.Run(result =>
        {
            var store = cli.Tenants(result);
            var t = store.GetTenant(result.GetValue(tenant)!);
            var domains = store.ListDomains(t);
            if (domains.Count == 0)
            {
                cli.Out.WriteLine($"Tenant '{t.Name}' has no domains.");
                return 0;
            }
            TextTable.Write(cli.Out, ["DOMAIN", "MTA 1", "MTA 2", "MTA 3"],
                domains.Select(d => new[] { d.Domain }.Concat(Enumerable.Range(0, 3).Select(i => i < d.Mtas.Count ? d.Mtas[i].ToString() : "-")).ToArray()));
            return 0;
        }));
        return command;
    }

    private static Command Remove(CliContext cli)
    {
        var tenant = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var name = new Argument<string>("DOMAIN");
        var command = new Command("remove", "Stop protecting a domain") { tenant, name };
        command.SetAction(cli.Run(result =>
        {
            var store = cli.Tenants(result);
            var t = store.GetTenant(result.GetValue(tenant)!);
            store.RemoveDomain(t, result.GetValue(name)!);
            cli.Out.WriteLine($"Domain '{DomainName.Parse(result.GetValue(name)!)}' removed from tenant '{t.Name}'.");
            return 0;
        }));
        return command;
    }
}
