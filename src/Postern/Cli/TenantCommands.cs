using System.CommandLine;
using Postern.Core;
using Postern.Core.Certificates;
using Postern.Core.Storage;
using Postern.Core.Tenants;

namespace Postern.Cli;

/// <summary>`postern tenant add|list|show|set|certificate`.</summary>
public static class TenantCommands
{
    public static Command Create(CliContext cli)
    {
        var tenant = new Command("tenant", "Manage the Microsoft 365 organisations Postern relays for");
        tenant.Add(Add(cli));
        tenant.Add(List(cli));
        tenant.Add(Show(cli));
        tenant.Add(Set(cli));
        tenant.Add(Certificate(cli));
        return tenant;
    }

    private static readonly Option<FileInfo?> ConfigFile = new("--config") { Description = "The server's JSON configuration (section \"Postern\"), as given to postern serve: its ProductDomain names the tenant's certificate" };

    private static TenantCertificates Certificates(CliContext cli, ParseResult result)
    {
        var options = ServeCommand.Load(result.GetValue(ConfigFile), result.GetResult(cli.DataDir) is { Implicit: false } ? result.GetValue(cli.DataDir) : null);
        return new TenantCertificates(new TenantCertificateStore(cli.Database(result)), options.ProductDomain);
    }

    private static void WriteCertificate(CliContext cli, Tenant tenant, StoredTenantCertificate certificate)
    {
        cli.Out.WriteLine($"Certificate of tenant '{tenant.Name}': {certificate.Name} ({(certificate.SelfSigned ? "self-signed" : "imported")}, " +
            $"thumbprint {certificate.Thumbprint}, valid until {certificate.NotAfter:yyyy-MM-dd}, in place since {certificate.InstalledAt:yyyy-MM-dd HH:mm} UTC).");
    }

    /// <summary>`postern tenant certificate show|renew|import TENANT`: the tenant's own client certificate.</summary>
    private static Command Certificate(CliContext cli)
    {
        var command = new Command("certificate", "The tenant's own TLS client certificate, presented when its mail goes back to Exchange Online");
        var tenantArgument = new Argument<string>("TENANT") { Description = "Tenant name or id" };

        var show = new Command("show", "Print the certificate's name, kind and validity (made self-signed if the tenant has none)") { tenantArgument, ConfigFile };
        show.SetAction(cli.Run(result =>
        {
            var tenant = cli.Tenants(result).GetTenant(result.GetValue(tenantArgument)!);
            WriteCertificate(cli, tenant, Certificates(cli, result).Ensure(tenant));
            return 0;
        }));
        command.Add(show);

        var renew = new Command("renew", "Replace the certificate with a new self-signed one under the same name") { tenantArgument, ConfigFile };
        renew.SetAction(cli.Run(result =>
        {
            var tenant = cli.Tenants(result).GetTenant(result.GetValue(tenantArgument)!);
            WriteCertificate(cli, tenant, Certificates(cli, result).RenewSelfSigned(tenant));
            cli.Out.WriteLine("Running servers present it from their next delivery; the inbound connector keeps its name.");
            return 0;
        }));
        command.Add(renew);

        var pfx = new Option<FileInfo>("--pfx") { Description = "The certificate with its private key (PFX), issued for the tenant's name", Required = true };
        var password = new Option<FileInfo?>("--password-file") { Description = "A file holding the PFX password (none if not given)" };
        var import = new Command("import", "Put an operator's certificate (issued for the tenant's name) in place of the tenant's") { tenantArgument, pfx, password, ConfigFile };
        import.SetAction(cli.Run(result =>
        {
            var tenant = cli.Tenants(result).GetTenant(result.GetValue(tenantArgument)!);
            var file = result.GetValue(pfx)!;
            if (!file.Exists)
                throw new PosternException($"--pfx '{file.FullName}' does not exist");
            var secret = result.GetValue(password) is { } p ? File.ReadAllText(p.FullName).TrimEnd('\r', '\n') : null;
            var certificates = Certificates(cli, result);
            StoredTenantCertificate stored;
            try
            {
                stored = certificates.Import(tenant, File.ReadAllBytes(file.FullName), secret);
            }
            catch (PosternException ex)
            {
                throw new PosternException($"--pfx '{file.FullName}': {ex.Message}; nothing was changed");
            }
            WriteCertificate(cli, tenant, stored);
            return 0;
        }));
        command.Add(import);
        return command;
    }

    private static Command Add(CliContext cli)
    {
        var name = new Argument<string>("NAME") { Description = "A short name for the tenant" };
        var id = new Option<string>("--tenant-id") { Description = "The Entra tenant id (GUID)", Required = true };
        var region = new Option<string>("--region") { Description = "au, eu or us", Required = true };
        var old = new Option<bool>("--created-before-2023") { Description = "The tenant was created before 2023 (legacy connector behaviour)" };
        var command = new Command("add", "Register a tenant, with its own self-signed client certificate") { name, id, region, old, ConfigFile };
        command.SetAction(cli.Run(result =>
        {
            var idText = result.GetValue(id)!;
            if (!Guid.TryParse(idText, out var guid))
                throw new PosternException($"--tenant-id '{idText}' is not a GUID");
            var added = cli.Tenants(result).AddTenant(result.GetValue(name)!, guid, result.GetValue(region)!.ToLowerInvariant(), result.GetValue(old));
            cli.Out.WriteLine($"Tenant '{added.Name}' added (id {added.Id}, region {added.Region}).");
            var certificate = Certificates(cli, result).Ensure(added);
            cli.Out.WriteLine($"Its certificate: {certificate.Name} (self-signed; postern tenant certificate import {added.Name} --pfx FILE puts a CA-issued one in its place).");
            cli.Out.WriteLine($"Next: postern domain add {added.Name} DOMAIN --mta HOST, then postern relay enable {added.Name}");
            return 0;
        }));
        return command;
    }

    private static Command List(CliContext cli)
    {
        var command = new Command("list", "List tenants");
        command.SetAction(cli.Run(result =>
        {
            var store = cli.Tenants(result);
            var tenants = store.ListTenants();
            if (tenants.Count == 0)
            {
                cli.Out.WriteLine("No tenants. Add one with: postern tenant add NAME --tenant-id GUID --region au|eu|us");
                return 0;
            }
            var domains = store.ListDomains().GroupBy(d => d.TenantId).ToDictionary(g => g.Key, g => g.Count());
            var rows = tenants.Select(t => new[]
            {
                t.Name, t.Id.ToString(), t.Region, t.RelayEnabled ? "enabled" : "disabled", OutboundModes.Format(t.Outbound),
                domains.GetValueOrDefault(t.Id).ToString(),
            });
            TextTable.Write(cli.Out, ["NAME", "TENANT ID", "REGION", "RELAY", "OUTBOUND", "DOMAINS"], rows);
            return 0;
        }));
        return command;
    }

    private static Command Show(CliContext cli)
    {
        var name = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var command = new Command("show", "Show one tenant, its domains and loop token") { name };
        command.SetAction(cli.Run(result =>
        {
            var store = cli.Tenants(result);
            var t = store.GetTenant(result.GetValue(name)!);
            cli.Out.WriteLine($"Name: {t.Name}");
            cli.Out.WriteLine($"Tenant id: {t.Id}");
            cli.Out.WriteLine($"Region: {t.Region}");
            cli.Out.WriteLine($"Created before 2023: {(t.CreatedBefore2023 ? "yes" : "no")}");
            cli.Out.WriteLine($"Outbound: {OutboundModes.Format(t.Outbound)}");
            cli.Out.WriteLine($"Relay: {(t.RelayEnabled ? "enabled" : "disabled")}" +
                (t.PreviousRelayKeyExpires is { } e && e > DateTimeOffset.UtcNow ? $" (previous key valid until {e:u})" : ""));
            cli.Out.WriteLine($"Loop token: {t.LoopToken}");
            if (t.PreviousLoopToken is { } other)
                cli.Out.WriteLine($"Loop token in rotation (recognised, not stamped): {other}");
            var domains = store.ListDomains(t);
            cli.Out.WriteLine(domains.Count == 0 ? "Domains: none" : "Domains:");
            foreach (var d in domains)
                cli.Out.WriteLine($"  {d.Domain}: {(d.Mtas.Count == 0 ? "no MTA" : string.Join(", ", d.Mtas))}");
            return 0;
        }));
        return command;
    }

    private static Command Set(CliContext cli)
    {
        var name = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var outbound = new Option<string?>("--outbound") { Description = "off, direct or via-m365" };
        var region = new Option<string?>("--region") { Description = "au, eu or us" };
        var command = new Command("set", "Change a tenant's settings") { name, outbound, region };
        command.SetAction(cli.Run(result =>
        {
            var store = cli.Tenants(result);
            var t = store.GetTenant(result.GetValue(name)!);
            if (result.GetValue(outbound) is { } mode)
                t = t with { Outbound = OutboundModes.Parse(mode) };
            if (result.GetValue(region) is { } r)
                t = Region.IsKnown(r) ? t with { Region = r } : throw new PosternException($"'{r}' is not a region (au, eu, us)");
            store.UpdateTenant(t);
            cli.Out.WriteLine($"Tenant '{t.Name}' updated: region {t.Region}, outbound {OutboundModes.Format(t.Outbound)}.");
            return 0;
        }));
        return command;
    }
}
