using System.CommandLine;
using Postern.Demo;

namespace Postern.Cli;

/// <summary>The `postern` command line: every command, on one <see cref="CliContext"/>.</summary>
public static class PosternCommands
{
    public static RootCommand Create(CliContext cli) => new("Postern: an email-security relay for Microsoft 365")
    {
        cli.DataDir,
        ServeCommand.Create(cli),
        TenantCommands.Create(cli),
        DomainCommands.Create(cli),
        RelayCommands.Create(cli),
        QueueCommands.Create(cli),
        TraceCommands.Create(cli),
        M365Commands.Create(cli),
        QuarantineCommands.Create(cli),
        PolicyCommands.Create(cli),
        DkimCommands.Create(cli),
        DoctorCommand.Create(cli),
        DemoCommand.Create(cli),
    };
}
