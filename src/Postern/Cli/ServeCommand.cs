using System.CommandLine;
using System.Net;
using System.Runtime.InteropServices;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using Postern.Core;
using Postern.Core.Configuration;
using Postern.Hosting;

namespace Postern.Cli;

/// <summary>
/// `postern serve`: the relay node as a .NET Generic Host (ASP.NET Core's, for Kestrel): settings from the JSON file,
/// POSTERN__… environment variables and `--Postern:Section:Setting=value` on the command line, bound to
/// <see cref="PosternOptions"/> and validated at start; the node as a hosted service; /metrics and /healthz on
/// Postern:Http:EndPoint. Runs until SIGTERM or Ctrl-C.
/// </summary>
public static class ServeCommand
{
    public static Command Create(CliContext cli)
    {
        var smtp = new Option<string?>("--smtp") { Description = "ADDRESS:PORT of the Microsoft 365-facing listener (default 127.0.0.1:2525)" };
        var config = new Option<FileInfo?>("--config") { Description = "JSON configuration file (section \"Postern\")" };
        var command = new Command("serve", "Run the relay: accept mail from Microsoft 365, spool it, deliver it; any --Postern:Name=value sets a setting")
        {
            smtp, config,
        };
        command.TreatUnmatchedTokensAsErrors = false;
        command.SetAction(cli.Run(async (result, cancellationToken) =>
        {
            var settings = result.UnmatchedTokens.ToArray();
            var unknown = settings.FirstOrDefault(s => !s.StartsWith("--Postern:", StringComparison.OrdinalIgnoreCase) || !s.Contains('='));
            if (unknown is not null)
                throw new PosternException($"serve: '{unknown}' is not an option; settings are given as --Postern:Section:Name=value");
            var dataDir = result.GetResult(cli.DataDir) is { Implicit: false } ? result.GetValue(cli.DataDir) : null;
            var endPoint = result.GetValue(smtp);
            if (endPoint is not null && (!IPEndPoint.TryParse(endPoint, out var parsed) || parsed.Port == 0))
                throw new PosternException($"--smtp '{endPoint}' is not ADDRESS:PORT");
            var file = result.GetValue(config);
            if (file is not null && !file.Exists)
                throw new PosternException($"--config '{file.FullName}' does not exist");

            await using var app = Build(file, dataDir, endPoint, settings);
            // The first SIGTERM or Ctrl-C stops gracefully (the cancellation token); a second one ends the process at once.
            var signals = 0;
            void Second(PosixSignalContext context)
            {
                if (Interlocked.Increment(ref signals) < 2)
                    return;
                Console.Error.WriteLine($"{DateTime.UtcNow:yyyy-MM-dd HH:mm:ss.fff} warn: Postern[0] A second signal ({context.Signal}): exiting at once; " +
                    "every acknowledged message is in the spool and is delivered at the next start");
                Console.Error.Flush();
                System.Diagnostics.Process.GetCurrentProcess().Kill();
            }
            using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Second);
            using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Second);
            try
            {
                await app.StartAsync(cancellationToken);
            }
            catch (OptionsValidationException ex)
            {
                throw new PosternException(ex.Failures.First());
            }
            catch (InvalidOperationException ex) when (ex.Message.Contains("Failed to convert configuration value", StringComparison.Ordinal))
            {
                throw new PosternException($"configuration: {ex.Message}");
            }
            catch (IOException ex) when (ex.Message.StartsWith("Failed to bind", StringComparison.Ordinal))
            {
                // Kestrel's; the SMTP server's own bind failures already name their listener.
                throw new PosternException($"cannot listen for HTTP on {app.Services.GetRequiredService<IOptions<PosternOptions>>().Value.Http.EndPoint} " +
                    $"(Postern:Http:EndPoint): {ex.Message}");
            }
            catch (System.Net.Sockets.SocketException ex)
            {
                var options = app.Services.GetRequiredService<IOptions<PosternOptions>>().Value;
                throw new PosternException($"cannot listen on {string.Join(", ", options.Listeners.Select(l => l.EndPoint))}: {ex.Message}");
            }
            await app.WaitForShutdownAsync(cancellationToken);
            app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Postern").LogInformation("Stopping");
            return 0;
        }));
        return command;
    }

    /// <summary>The host: configuration, validated options, logging, the node, Kestrel with /metrics and /healthz.</summary>
    public static WebApplication Build(FileInfo? file, string? dataDir, string? smtpEndPoint, IReadOnlyList<string> settings)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = Directory.GetCurrentDirectory() });
        var configuration = builder.Configuration;
        configuration.Sources.Clear();
        if (file is not null)
            configuration.AddJsonFile(file.FullName, optional: false);
        configuration.AddEnvironmentVariables();
        configuration.AddCommandLine([.. settings]);
        var section = configuration.GetSection(PosternOptions.Section);

        builder.Services.AddOptions<PosternOptions>()
            .Bind(section)
            .PostConfigure(options =>
            {
                if (dataDir is not null)
                    options.DataDir = dataDir;
                options.ApplyDefaults();
                if (smtpEndPoint is not null)
                    options.Listeners[0].EndPoint = smtpEndPoint;
            })
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<PosternOptions>, PosternOptionsValidator>();

        var logLevel = Enum.TryParse<LogLevel>(section["LogLevel"], ignoreCase: true, out var level) ? level : LogLevel.Information;
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(logLevel);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        // A start that fails is reported by serve as one line naming the setting; the host would add a stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.None);
        if (string.Equals(section["LogFormat"], "json", StringComparison.OrdinalIgnoreCase))
            builder.Logging.AddJsonConsole(o =>
            {
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ";
                o.UseUtcTimestamp = true;
            });
        else
            builder.Logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "yyyy-MM-dd HH:mm:ss.fff ";
                o.UseUtcTimestamp = true;
            });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(60));

        builder.Services.AddSingleton<NodeService>();
        builder.Services.AddHostedService(services => services.GetRequiredService<NodeService>());
        builder.Services.AddSingleton<NodeGauges>();
        builder.Services.AddHealthChecks().AddPosternReadiness();
        var otlp = section["Metrics:OtlpEndpoint"];
        builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("postern", serviceVersion: Core.Telemetry.PosternMetrics.Version))
            .WithMetrics(metrics =>
        {
            metrics.AddMeter(Core.Telemetry.PosternMetrics.MeterName, Smtp.SmtpMetrics.MeterName).AddPrometheusExporter();
            if (!string.IsNullOrEmpty(otlp) && Uri.TryCreate(otlp, UriKind.Absolute, out var uri))
                metrics.AddOtlpExporter(o => o.Endpoint = uri);
        });

        var http = section["Http:EndPoint"] ?? new HttpOptions().EndPoint;
        var certificatePath = section["Http:CertificatePath"];
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            if (!IPEndPoint.TryParse(http, out var endPoint))
                return; // Validation names the setting before anything listens.
            kestrel.Listen(endPoint, listen =>
            {
                if (!string.IsNullOrEmpty(certificatePath) && File.Exists(certificatePath))
                    listen.UseHttps(X509CertificateLoader.LoadPkcs12FromFile(certificatePath, section["Http:CertificatePassword"]));
            });
        });

        var app = builder.Build();
        app.Services.GetRequiredService<NodeGauges>();
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapHealthChecks("/healthz/live", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = HealthResponse.WriteAsync });
        app.MapHealthChecks("/healthz/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains(ReadinessChecks.Tag), ResponseWriter = HealthResponse.WriteAsync });
        return app;
    }

    /// <summary>Options from the file, then POSTERN__… environment variables, then --data-dir (for the commands that read them without serving).</summary>
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

/// <summary>Start-up validation of <see cref="PosternOptions"/>: every problem as one line naming the setting and its value.</summary>
public sealed class PosternOptionsValidator : IValidateOptions<PosternOptions>
{
    public ValidateOptionsResult Validate(string? name, PosternOptions options)
    {
        var problems = options.Validate().ToArray();
        if (problems.Length > 0)
            return ValidateOptionsResult.Fail(problems);
        try
        {
            CliContext.OpenDatabase(options.DataDir);
        }
        catch (PosternException ex)
        {
            return ValidateOptionsResult.Fail(ex.Message);
        }
        return ValidateOptionsResult.Success;
    }
}

/// <summary>/healthz as JSON: the overall status and each check with what it found.</summary>
public static class HealthResponse
{
    public static Task WriteAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json";
        var body = new System.Text.Json.Nodes.JsonObject
        {
            ["status"] = report.Status.ToString().ToLowerInvariant(),
            ["checks"] = new System.Text.Json.Nodes.JsonObject(report.Entries.Select(e => KeyValuePair.Create(e.Key, (System.Text.Json.Nodes.JsonNode?)new System.Text.Json.Nodes.JsonObject
            {
                ["status"] = e.Value.Status.ToString().ToLowerInvariant(),
                ["description"] = e.Value.Description,
                ["durationMs"] = Math.Round(e.Value.Duration.TotalMilliseconds, 1),
            }))),
        };
        return context.Response.WriteAsync(body.ToJsonString());
    }
}
