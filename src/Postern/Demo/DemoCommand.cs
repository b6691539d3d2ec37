using System.CommandLine;
using Postern.Cli;

namespace Postern.Demo;

/// <summary>`postern demo`: Postern and a simulated Microsoft 365 tenant on this machine, mail through both, what happened.</summary>
public static class DemoCommand
{
    public static Command Create(CliContext cli)
    {
        var directory = new Option<string?>("--directory") { Description = "Where the demo keeps its data, configuration and Maildirs (default: a new directory under /tmp)" };
        var emulator = new Option<string?>("--emulator") { Description = "Postern.ExoEmulator.dll (default: next to postern, or the repository's build; POSTERN_EXO_EMULATOR)" };
        var clamd = new Option<string?>("--clamd") { Description = "clamd to scan with (default: /run/clamav/clamd.ctl when clamd answers there; none: do without)" };
        var rspamd = new Option<string?>("--rspamd") { Description = "Rspamd's normal worker (default: http://127.0.0.1:11333 when it answers; none: do without)" };
        var exit = new Option<bool>("--exit") { Description = "Stop everything once the samples have arrived (default: keep running until Ctrl-C)" };
        var command = new Command("demo",
            "Start postern serve and the Exchange Online emulator with the tenants contoso.com and fabrikam.com, provision them " +
            "through m365 apply, send sample messages and show where each ended and why")
        { directory, emulator, clamd, rspamd, exit };
        command.SetAction(cli.Run(async (result, cancellationToken) =>
        {
            var settings = new DemoSettings
            {
                Directory = result.GetValue(directory) ?? Path.Combine(Path.GetTempPath(), $"postern-demo-{DateTime.UtcNow:yyyyMMdd-HHmmss}"),
                EmulatorPath = result.GetValue(emulator) ?? Environment.GetEnvironmentVariable("POSTERN_EXO_EMULATOR"),
                Clamd = result.GetValue(clamd),
                Rspamd = result.GetValue(rspamd),
                ExitWhenDone = result.GetValue(exit),
            };
            await using var demo = new DemoRun(settings, cli.Out);
            return await demo.RunAsync(cancellationToken);
        }));
        return command;
    }
}

/// <summary>What `postern demo` was asked for.</summary>
public sealed class DemoSettings
{
    public required string Directory { get; init; }
    public string? EmulatorPath { get; init; }
    public string? Clamd { get; init; }
    public string? Rspamd { get; init; }
    public bool ExitWhenDone { get; init; }
}
