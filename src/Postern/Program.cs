using System.CommandLine;
using Postern.Cli;

var cli = new CliContext();
var root = new RootCommand("Postern: an email-security relay for Microsoft 365")
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
};
return await root.Parse(args).InvokeAsync();
