using System.CommandLine;
using System.Text;
using Postern.Core;
using Postern.Core.Quarantine;
using Postern.Core.Storage;

namespace Postern.Cli;

/// <summary>`postern quarantine list|show|release|delete`.</summary>
public static class QuarantineCommands
{
    public static Command Create(CliContext cli)
    {
        var quarantine = new Command("quarantine", "Messages held by policy (malware, spam, …)");
        quarantine.Add(List(cli));
        quarantine.Add(Show(cli));
        quarantine.Add(Release(cli));
        quarantine.Add(Delete(cli));
        return quarantine;
    }

    private static QuarantineStore Store(CliContext cli, ParseResult result) =>
        new(cli.Database(result), result.GetValue(cli.DataDir)!);

    private static Command List(CliContext cli)
    {
        var tenant = new Option<string?>("--tenant") { Description = "Only this tenant (name or id)" };
        var all = new Option<bool>("--all") { Description = "Include released and deleted messages" };
        var command = new Command("list", "List quarantined messages, newest first") { tenant, all };
        command.SetAction(cli.Run(result =>
        {
            var tenants = cli.Tenants(result);
            Guid? tenantId = result.GetValue(tenant) is { } t ? tenants.GetTenant(t).Id : null;
            var entries = Store(cli, result).List(tenantId, result.GetValue(all));
            if (entries.Count == 0)
            {
                cli.Out.WriteLine("The quarantine is empty.");
                return 0;
            }
            var names = tenants.ListTenants().ToDictionary(x => x.Id, x => x.Name);
            TextTable.Write(cli.Out, ["ID", "STATE", "TENANT", "QUARANTINED", "FROM", "TO", "SUBJECT", "RULE", "REASON"],
                entries.Select(e => new[]
                {
                    e.Id, e.State, names.GetValueOrDefault(e.TenantId, e.TenantId.ToString()), e.QuarantinedAt.ToString("u"),
                    e.Envelope.MailFrom.Length == 0 ? "<>" : e.Envelope.MailFrom, string.Join(',', e.Envelope.Recipients.Select(r => r.Address)),
                    e.Envelope.Subject ?? "", e.Rule, e.Reason,
                }));
            return 0;
        }));
        return command;
    }

    private static Command Show(CliContext cli)
    {
        var id = new Argument<string>("ID") { Description = "Quarantine id" };
        var command = new Command("show", "Show a quarantined message: envelope, why it is held, and its headers") { id };
        command.SetAction(cli.Run(result =>
        {
            var store = Store(cli, result);
            var e = store.Get(result.GetValue(id)!.Trim().ToUpperInvariant());
            cli.Out.WriteLine($"Id: {e.Id}");
            cli.Out.WriteLine($"State: {e.State}{(e.ReleasedAs is { } r ? $" (as {r})" : "")}");
            cli.Out.WriteLine($"Quarantined: {e.QuarantinedAt:u} by rule '{e.Rule}'");
            cli.Out.WriteLine($"Reason: {e.Reason}");
            cli.Out.WriteLine($"From: {(e.Envelope.MailFrom.Length == 0 ? "<>" : e.Envelope.MailFrom)}");
            cli.Out.WriteLine($"To: {string.Join(", ", e.Envelope.Recipients.Select(x => x.Address))}");
            cli.Out.WriteLine($"Size: {e.Size} bytes");
            if (e.State is QuarantineStates.Held or QuarantineStates.Releasing)
            {
                cli.Out.WriteLine();
                using var stream = store.OpenMessage(e.Id);
                using var reader = new StreamReader(stream, Encoding.UTF8);
                string? line;
                while ((line = reader.ReadLine()) is { Length: > 0 })
                    cli.Out.WriteLine(line);
            }
            return 0;
        }));
        return command;
    }

    private static Command Release(CliContext cli)
    {
        var id = new Argument<string>("ID") { Description = "Quarantine id" };
        var wait = new Option<TimeSpan>("--wait") { Description = "How long to wait for the server to release it", DefaultValueFactory = _ => TimeSpan.FromSeconds(15) };
        var command = new Command("release", "Send a quarantined message on through normal delivery (exactly once)") { id, wait };
        command.SetAction(cli.Run(async (result, cancellationToken) =>
        {
            var store = Store(cli, result);
            var entry = store.Get(result.GetValue(id)!.Trim().ToUpperInvariant());
            if (entry.State != QuarantineStates.Held)
                throw new PosternException($"quarantined message '{entry.Id}' is {entry.State}, not held");
            store.RequestRelease(entry.Id);
            var deadline = DateTime.UtcNow + result.GetValue(wait);
            while (DateTime.UtcNow < deadline)
            {
                var now = store.Get(entry.Id);
                if (now.State == QuarantineStates.Released)
                {
                    cli.Out.WriteLine($"Released {entry.Id}; delivering as {now.ReleasedAs}.");
                    return 0;
                }
                await Task.Delay(200, cancellationToken);
            }
            cli.Out.WriteLine($"Release of {entry.Id} requested; no running server took it yet (it will when one runs).");
            return 0;
        }));
        return command;
    }

    private static Command Delete(CliContext cli)
    {
        var id = new Argument<string>("ID") { Description = "Quarantine id" };
        var command = new Command("delete", "Delete a quarantined message for good") { id };
        command.SetAction(cli.Run(result =>
        {
            var store = Store(cli, result);
            var messageId = result.GetValue(id)!.Trim().ToUpperInvariant();
            store.Delete(messageId);
            cli.Out.WriteLine($"Deleted {messageId}.");
            return 0;
        }));
        return command;
    }
}
