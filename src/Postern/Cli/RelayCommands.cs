using System.CommandLine;
using Postern.Core;
using Postern.Core.Tenants;

namespace Postern.Cli;

/// <summary>`postern relay enable|rotate|disable`: the tenant's relay key.</summary>
public static class RelayCommands
{
    public static Command Create(CliContext cli)
    {
        var relay = new Command("relay", "Turn a tenant's relay on or off and manage its relay key");
        relay.Add(Enable(cli));
        relay.Add(Rotate(cli));
        relay.Add(Disable(cli));
        relay.Add(RotateLoopToken(cli));
        return relay;
    }

    private static Command Enable(CliContext cli)
    {
        var tenant = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var command = new Command("enable", "Enable the relay and print a new relay key (shown once)") { tenant };
        command.SetAction(cli.Run(result =>
        {
            var store = cli.Tenants(result);
            var t = store.GetTenant(result.GetValue(tenant)!);
            if (t.RelayEnabled)
                throw new PosternException($"the relay of tenant '{t.Name}' is already enabled; use 'postern relay rotate {t.Name}' for a new key");
            var key = RelayKey.Generate();
            store.UpdateTenant(t with { RelayKeyHash = RelayKey.Hash(key), PreviousRelayKeyHash = null, PreviousRelayKeyExpires = null });
            PrintKey(cli, $"Relay enabled for tenant '{t.Name}'.", key);
            return 0;
        }));
        return command;
    }

    private static Command Rotate(CliContext cli)
    {
        var tenant = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var grace = new Option<TimeSpan>("--grace")
        {
            Description = "How long the old key keeps working, to update the Exchange Online rule (e.g. 24:00:00; 0 to stop it at once)",
            DefaultValueFactory = _ => TimeSpan.FromHours(24),
        };
        var command = new Command("rotate", "Make a new relay key; the old one works for the grace period") { tenant, grace };
        command.SetAction(cli.Run(result =>
        {
            var store = cli.Tenants(result);
            var t = store.GetTenant(result.GetValue(tenant)!);
            if (!t.RelayEnabled)
                throw new PosternException($"the relay of tenant '{t.Name}' is not enabled; use 'postern relay enable {t.Name}'");
            var period = result.GetValue(grace);
            if (period < TimeSpan.Zero)
                throw new PosternException($"--grace '{period}' must not be negative");
            var key = RelayKey.Generate();
            var expires = DateTimeOffset.UtcNow + period;
            store.UpdateTenant(t with
            {
                RelayKeyHash = RelayKey.Hash(key),
                PreviousRelayKeyHash = period > TimeSpan.Zero ? t.RelayKeyHash : null,
                PreviousRelayKeyExpires = period > TimeSpan.Zero ? expires : null,
            });
            var note = period > TimeSpan.Zero ? $" The old key works until {expires:u}." : " The old key no longer works.";
            PrintKey(cli, $"New relay key for tenant '{t.Name}'.{note}", key);
            return 0;
        }));
        return command;
    }

    private static Command Disable(CliContext cli)
    {
        var tenant = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var command = new Command("disable", "Disable the relay: Postern refuses the tenant's mail from now on") { tenant };
        command.SetAction(cli.Run(result =>
        {
            var store = cli.Tenants(result);
            var t = store.GetTenant(result.GetValue(tenant)!);
            store.UpdateTenant(t with { RelayKeyHash = null, PreviousRelayKeyHash = null, PreviousRelayKeyExpires = null });
            cli.Out.WriteLine($"Relay disabled for tenant '{t.Name}'; its key no longer works. Disable the Exchange Online rules too, or mail will be refused.");
            return 0;
        }));
        return command;
    }

    /// <summary>
    /// Loop token rotation in three steps, so Exchange Online's Loop Check rule always knows the token
    /// Postern stamps: begin (a new token is recognised, not yet stamped; apply the rule), --switch
    /// (Postern stamps the new one; the old is still recognised), --finish (the old one is forgotten).
    /// </summary>
    private static Command RotateLoopToken(CliContext cli)
    {
        var tenant = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var switchOver = new Option<bool>("--switch") { Description = "Step 2: stamp the new token (after `postern m365 apply` put both in the Loop Check rule)" };
        var finish = new Option<bool>("--finish") { Description = "Step 3: forget the old token" };
        var command = new Command("rotate-loop-token", "Rotate the tenant's loop token in three steps (begin, --switch, --finish)") { tenant, switchOver, finish };
        command.SetAction(cli.Run(result =>
        {
            var store = cli.Tenants(result);
            var t = store.GetTenant(result.GetValue(tenant)!);
            if (result.GetValue(switchOver) && result.GetValue(finish))
                throw new PosternException("give --switch or --finish, not both");
            if (result.GetValue(switchOver))
            {
                if (t.PreviousLoopToken is not { } pending)
                    throw new PosternException($"tenant '{t.Name}' has no loop token rotation in progress; begin with: postern relay rotate-loop-token {t.Name}");
                store.UpdateTenant(t with { LoopToken = pending, PreviousLoopToken = t.LoopToken });
                cli.Out.WriteLine($"Tenant '{t.Name}' now stamps the new loop token; the old one is still recognised.");
                cli.Out.WriteLine($"Next, once mail stamped with the old token has passed: postern relay rotate-loop-token {t.Name} --finish, then postern m365 apply {t.Name}.");
                return 0;
            }
            if (result.GetValue(finish))
            {
                if (t.PreviousLoopToken is null)
                    throw new PosternException($"tenant '{t.Name}' has no loop token rotation in progress");
                store.UpdateTenant(t with { PreviousLoopToken = null });
                cli.Out.WriteLine($"Loop token rotation of tenant '{t.Name}' finished; only the current token is recognised. Run postern m365 apply {t.Name}.");
                return 0;
            }
            if (t.PreviousLoopToken is not null)
                throw new PosternException($"tenant '{t.Name}' is already rotating its loop token; continue with --switch or --finish");
            store.UpdateTenant(t with { PreviousLoopToken = LoopToken.Generate() });
            cli.Out.WriteLine($"New loop token made for tenant '{t.Name}': recognised as a loop from now on, not yet stamped.");
            cli.Out.WriteLine($"Next: postern m365 apply {t.Name} (the Loop Check rule then matches both), then postern relay rotate-loop-token {t.Name} --switch.");
            return 0;
        }));
        return command;
    }

    /// <summary>The key is the last line on its own, so scripts can take it with `tail -1`.</summary>
    private static void PrintKey(CliContext cli, string message, string key)
    {
        cli.Out.WriteLine(message);
        cli.Out.WriteLine("Put this key in the Exchange Online rule's X-Postern-Key header. It is shown only once:");
        cli.Out.WriteLine(key);
    }
}
