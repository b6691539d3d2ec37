using System.CommandLine;
using Postern.Core;
using Postern.Core.Storage;

namespace Postern.Cli;

/// <summary>What every command shares: the --data-dir option, the database, and one way to report errors.</summary>
public sealed class CliContext
{
    public Option<string> DataDir { get; } = new("--data-dir")
    {
        Description = "Postern's data directory (database, spool, certificates)",
        DefaultValueFactory = _ => "postern-data",
        Recursive = true,
    };

    public TextWriter Out { get; init; } = Console.Out;
    public TextWriter Error { get; init; } = Console.Error;

    public PosternDatabase Database(ParseResult result) => new(result.GetValue(DataDir)!);

    public TenantStore Tenants(ParseResult result) => new(Database(result));

    /// <summary>Runs a command body; a <see cref="PosternException"/> becomes one line on stderr and exit code 1.</summary>
    public Func<ParseResult, CancellationToken, Task<int>> Run(Func<ParseResult, CancellationToken, Task<int>> body) =>
        async (result, cancellationToken) =>
        {
            try
            {
                return await body(result, cancellationToken).ConfigureAwait(false);
            }
            catch (PosternException ex)
            {
                await Error.WriteLineAsync("error: " + ex.Message).ConfigureAwait(false);
                return 1;
            }
        };

    public Func<ParseResult, CancellationToken, Task<int>> Run(Func<ParseResult, int> body) =>
        Run((result, _) => Task.FromResult(body(result)));
}
