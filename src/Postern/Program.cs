using Postern.Cli;

return await PosternCommands.Create(new CliContext()).Parse(args).InvokeAsync();
