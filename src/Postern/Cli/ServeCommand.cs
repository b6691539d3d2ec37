using System.CommandLine;
using System.Net;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Postern.Core;
using Postern.Core.Configuration;
using Postern.Hosting;

namespace Postern.Cli;

/// <summary>`postern serve`: run a relay node until SIGTERM or Ctrl-C.</summary>
public static class ServeCommand
{
    public static Command Create(CliContext cli)
    {
        var smtp = new Option<string?>("--smtp") { Description = "ADDRESS:PORT of the Microsoft 365-facing listener (default 127.0.0.1:2525)" };
        var config = new Option<FileInfo?>("--config") { Description = "JSON configuration file (section \"Postern\")" };
        var command = new Command("serve", "Run the relay: accept mail from Microsoft 365, spool it, deliver it") { smtp, config };
        command.SetAction(cli.Run(async (result, cancellationToken) =>
        {
            var options = Load(result.GetValue(config), result.GetResult(cli.DataDir) is { Implicit: false } ? result.GetValue(cli.DataDir) : null);
            if (result.GetValue(smtp) is { } endPoint)
            {
                if (!IPEndPoint.TryParse(endPoint, out var parsed) || parsed.Port == 0)
                    throw new PosternException($"--smtp '{endPoint}' is not ADDRESS:PORT");
                options.Listeners[0].EndPoint = endPoint;
            }
            var problems = options.Validate().ToArray();
            if (problems.Length > 0)
                throw new PosternException(problems[0]);
            // Fails with one line naming the data directory before anything starts listening.
            CliContext.OpenDatabase(options.DataDir);

            using var loggerFactory = LoggerFactory.Create(logging => logging
                .SetMinimumLevel(options.LogLevel)
                .AddSimpleConsole(o =>
                {
                    o.SingleLine = true;
                    o.TimestampFormat = "yyyy-MM-dd HH:mm:ss.fff ";
                    o.UseUtcTimestamp = true;
                }));
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
            {
                context.Cancel = true;
                stop.Cancel();
            });
            await using var node = new PosternNode(options, loggerFactory);
            try
            {
                await node.StartAsync(stop.Token);
            }
            catch (System.Net.Sockets.SocketException ex)
            {
                throw new PosternException($"cannot listen on {string.Join(", ", options.Listeners.Select(l => l.EndPoint))}: {ex.Message}");
            }
            try
            {
                await Task.Delay(Timeout.Infinite, stop.Token);
            }
            catch (OperationCanceledException)
            {
            }
            loggerFactory.CreateLogger("Postern").LogInformation("Stopping");
            return 0;
        }));
        return command;
    }

    /// <summary>Options from the file, then POSTERN__… environment variables, then --data-dir.</summary>
    public static PosternOptions Load(FileInfo? file, string? dataDir)
    {
        var builder = new ConfigurationBuilder();
        if (file is not null)
        {
            if (!file.Exists)
                throw new PosternException($"--config '{file.FullName}' does not exist");
            builder.AddJsonFile(file.FullName, optional: false);
        }
        builder.AddEnvironmentVariables();
        var options = new PosternOptions();
        try
        {
            builder.Build().GetSection(PosternOptions.Section).Bind(options);
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException or InvalidDataException)
        {
            throw new PosternException($"configuration: {ex.Message}");
        }
        if (dataDir is not null)
            options.DataDir = dataDir;
        return options.ApplyDefaults();
    }
}
