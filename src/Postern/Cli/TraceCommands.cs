using System.CommandLine;
using System.Text.Json;
using Postern.Core.Trace;

namespace Postern.Cli;

/// <summary>`postern trace list`: what happened to each message and why.</summary>
public static class TraceCommands
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static Command Create(CliContext cli)
    {
        var trace = new Command("trace", "Message trace");
        var tenant = new Option<string?>("--tenant") { Description = "Only this tenant (name or id)" };
        var json = new Option<bool>("--json") { Description = "Machine-readable output, with every delivery attempt" };
        var limit = new Option<int>("--limit") { Description = "At most this many messages, newest first", DefaultValueFactory = _ => 100 };
        var list = new Command("list", "List recent messages with their state") { tenant, json, limit };
        list.SetAction(cli.Run(result =>
        {
            var database = cli.Database(result);
            var tenants = new Core.Storage.TenantStore(database);
            Guid? tenantId = result.GetValue(tenant) is { } t ? tenants.GetTenant(t).Id : null;
            var count = result.GetValue(limit);
            if (count < 1)
                throw new Core.PosternException($"--limit '{count}' must be at least 1");
            var records = new TraceStore(database).List(tenantId, limit: count);
            if (result.GetValue(json))
            {
                cli.Out.WriteLine(JsonSerializer.Serialize(records, Json));
                return 0;
            }
            if (records.Count == 0)
            {
                cli.Out.WriteLine("No messages in the trace.");
                return 0;
            }
            var names = tenants.ListTenants().ToDictionary(x => x.Id.ToString(), x => x.Name);
            TextTable.Write(cli.Out, ["RECEIVED", "QUEUE ID", "TENANT", "DIR", "FROM", "TO", "SIZE", "STATE", "REASON"],
                records.Select(r => new[]
                {
                    r.ReceivedAt, r.QueueId, r.TenantId is { } id ? names.GetValueOrDefault(id, id) : "-", r.Direction,
                    r.MailFrom.Length == 0 ? "<>" : r.MailFrom, string.Join(',', r.Recipients), r.Size.ToString(), r.State, r.Reason ?? "",
                }));
            return 0;
        }));
        trace.Add(list);
        return trace;
    }
}
