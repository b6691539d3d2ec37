using System.CommandLine;
using Postern.Cli;

// SIGTERM and Ctrl-C cancel the running command; it then has this long to finish (postern serve stops gracefully,
// postern demo stops what it started) before System.CommandLine ends the process.
var invocation = new InvocationConfiguration { ProcessTerminationTimeout = TimeSpan.FromSeconds(90) };
return await PosternCommands.Create(new CliContext()).Parse(args).InvokeAsync(invocation);
