using System.CommandLine;
using Postern.Core;
using Postern.Core.Trace;

namespace Postern.Cli;

/// <summary>`postern queue list|retry`.</summary>
public static class QueueCommands
{
    public static Command Create(CliContext cli)
    {
        var queue = new Command("queue", "Messages waiting for delivery");
        queue.Add(List(cli));
        queue.Add(Retry(cli));
        return queue;
    }

    private static Command List(CliContext cli)
    {
        var command = new Command("list", "List queued and deferred messages");
        command.SetAction(cli.Run(result =>
        {
            var database = cli.Database(result);
            var tenants = new Core.Storage.TenantStore(database).ListTenants().ToDictionary(t => t.Id.ToString(), t => t.Name);
            var queued = new TraceStore(database).List(queuedOnly: true);
            if (queued.Count == 0)
            {
                cli.Out.WriteLine("The queue is empty.");
                return 0;
            }
            TextTable.Write(cli.Out, ["QUEUE ID", "STATE", "TENANT", "RECEIVED", "FROM", "TO", "NEXT ATTEMPT", "REASON"],
                queued.Select(r => new[]
                {
                    r.QueueId, r.State, r.TenantId is { } id ? tenants.GetValueOrDefault(id, id) : "-", r.ReceivedAt,
                    r.MailFrom.Length == 0 ? "<>" : r.MailFrom, string.Join(',', r.Recipients), r.NextAttemptAt ?? "now", r.Reason ?? "",
                }));
            cli.Out.WriteLine($"{queued.Count} message(s) in the queue.");
            return 0;
        }));
        return command;
    }

    private static Command Retry(CliContext cli)
    {
        var id = new Argument<string?>("ID") { Description = "Queue id of the message to retry", Arity = ArgumentArity.ZeroOrOne };
        var all = new Option<bool>("--all") { Description = "Retry every deferred message" };
        var command = new Command("retry", "Deliver a deferred message (or all) now instead of at the next scheduled attempt") { id, all };
        command.SetAction(cli.Run(result =>
        {
            var queueId = result.GetValue(id);
            var everything = result.GetValue(all);
            if (queueId is null == !everything)
                throw new PosternException("give either a queue ID or --all");
            var store = new TraceStore(cli.Database(result));
            if (queueId is not null)
            {
                queueId = queueId.Trim().ToUpperInvariant();
                if (store.List(queuedOnly: true).All(r => r.QueueId != queueId))
                    throw new PosternException($"no message '{queueId}' in the queue");
            }
            store.RequestRetry(queueId ?? "*");
            cli.Out.WriteLine($"Retry of {(queueId ?? "all deferred messages")} requested; the running server starts it within a second.");
            return 0;
        }));
        return command;
    }
}
