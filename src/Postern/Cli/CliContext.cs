using System.CommandLine;
using Microsoft.Data.Sqlite;
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

    public PosternDatabase Database(ParseResult result) => OpenDatabase(result.GetValue(DataDir)!);

    public TenantStore Tenants(ParseResult result) => new(Database(result));

    /// <summary>
    /// Opens (creating if need be) the database in <paramref name="dataDirectory"/>. A data directory that is a
    /// file, unwritable or holds a broken database becomes a <see cref="PosternException"/> naming it, since the
    /// path is the one thing the user can fix.
    /// </summary>
    public static PosternDatabase OpenDatabase(string dataDirectory)
    {
        try
        {
            return new PosternDatabase(dataDirectory);
        }
        catch (Exception ex) when (IsStorageFailure(ex))
        {
            var full = Path.GetFullPath(dataDirectory);
            if (File.Exists(full))
                throw new PosternException($"data directory '{full}' is a file, not a directory; give --data-dir a directory Postern can write to");
            var what = ex is SqliteException ? $"database '{Path.Combine(full, "postern.db")}'" : $"data directory '{full}'";
            throw new PosternException($"cannot use {what}: {FirstLine(ex.Message)}");
        }
    }

    /// <summary>
    /// Runs a command body. A <see cref="PosternException"/>, or a file-system or database failure, becomes one
    /// line on stderr and exit code 1: a stack trace tells an operator nothing they can act on.
    /// </summary>
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
            catch (Exception ex) when (IsStorageFailure(ex))
            {
                // .NET's I/O messages name their path; SQLite's name nothing, so say which database.
                var where = ex is SqliteException ? $" (database in data directory '{Path.GetFullPath(result.GetValue(DataDir)!)}')" : "";
                await Error.WriteLineAsync("error: " + FirstLine(ex.Message) + where).ConfigureAwait(false);
                return 1;
            }
        };

    public Func<ParseResult, CancellationToken, Task<int>> Run(Func<ParseResult, int> body) =>
        Run((result, _) => Task.FromResult(body(result)));

    private static bool IsStorageFailure(Exception ex) => ex is IOException or UnauthorizedAccessException or SqliteException;

    private static string FirstLine(string message) => message.Split('\n', 2)[0].TrimEnd('\r', ' ');
}
