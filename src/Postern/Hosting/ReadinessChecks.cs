using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using Postern.Core.Configuration;
using Postern.Core.Trace;

namespace Postern.Hosting;

/// <summary>
/// What /healthz/ready checks, one health check each, so the JSON names the one that failed: the database answers,
/// the spool is writable with free space above Postern:Health:MinFreeSpoolBytes, every enabled network engine
/// answers its ping, every listener is bound, and the oldest queued message is younger than Postern:Health:MaxQueueAge.
/// </summary>
public static class ReadinessChecks
{
    public const string Tag = "ready";

    public static IHealthChecksBuilder AddPosternReadiness(this IHealthChecksBuilder checks) => checks
        .AddCheck<DatabaseCheck>("database", tags: [Tag])
        .AddCheck<SpoolCheck>("spool", tags: [Tag])
        .AddCheck<EnginesCheck>("engines", tags: [Tag])
        .AddCheck<ListenersCheck>("listeners", tags: [Tag])
        .AddCheck<QueueAgeCheck>("queue", tags: [Tag]);

    private static HealthCheckResult NotStarted => HealthCheckResult.Unhealthy("the node has not started");

    public sealed class DatabaseCheck(NodeService service) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            if (service.Node?.Database is not { } database)
                return Task.FromResult(NotStarted);
            try
            {
                using var connection = database.Open();
                using var command = connection.CreateCommand();
                command.CommandText = "SELECT 1";
                command.ExecuteScalar();
                return Task.FromResult(HealthCheckResult.Healthy("answers"));
            }
            catch (Exception ex) when (ex is Microsoft.Data.Sqlite.SqliteException or IOException or UnauthorizedAccessException)
            {
                return Task.FromResult(HealthCheckResult.Unhealthy($"cannot query the database: {ex.Message}"));
            }
        }
    }

    public sealed class SpoolCheck(NodeService service, IOptions<PosternOptions> options) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            if (service.Node is not { } node)
                return NotStarted;
            try
            {
                var probe = Path.Combine(node.SpoolDirectory, ".health-probe");
                await File.WriteAllTextAsync(probe, DateTimeOffset.UtcNow.ToString("O"), cancellationToken).ConfigureAwait(false);
                File.Delete(probe);
                var free = new DriveInfo(Path.GetFullPath(node.SpoolDirectory)).AvailableFreeSpace;
                var minimum = options.Value.Health.MinFreeSpoolBytes;
                return free < minimum
                    ? HealthCheckResult.Unhealthy($"{free / (1024 * 1024)} MiB free, below Postern:Health:MinFreeSpoolBytes ({minimum / (1024 * 1024)} MiB)")
                    : HealthCheckResult.Healthy($"writable, {free / (1024 * 1024)} MiB free");
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                return HealthCheckResult.Unhealthy($"the spool is not writable: {ex.Message}");
            }
        }
    }

    public sealed class EnginesCheck(NodeService service) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            if (service.Node is not { } node)
                return NotStarted;
            if (node.EngineProbes.Count == 0)
                return HealthCheckResult.Healthy("no network engine enabled");
            var failing = new List<string>();
            foreach (var (engine, ping) in node.EngineProbes)
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(TimeSpan.FromSeconds(3));
                try
                {
                    await ping(timeout.Token).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
                {
                    failing.Add($"{engine} does not answer ({(ex is OperationCanceledException ? "timed out" : ex.Message)})");
                }
            }
            var names = string.Join(", ", node.EngineProbes.Select(p => p.Engine));
            return failing.Count == 0 ? HealthCheckResult.Healthy($"{names} answer") : HealthCheckResult.Unhealthy(string.Join("; ", failing));
        }
    }

    public sealed class ListenersCheck(NodeService service) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(service.Node is not { } node ? NotStarted
                : node.Listening ? HealthCheckResult.Healthy(string.Join(", ", node.EndPoints))
                : HealthCheckResult.Unhealthy("not every listener is bound"));
    }

    public sealed class QueueAgeCheck(NodeService service, IOptions<PosternOptions> options) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            if (service.Node?.Database is not { } database)
                return Task.FromResult(NotStarted);
            var summary = new TraceStore(database).QueueSummary();
            var oldest = summary.Where(s => s.OldestReceivedAt is not null).Select(s => s.OldestReceivedAt!.Value).DefaultIfEmpty(DateTimeOffset.UtcNow).Min();
            var age = DateTimeOffset.UtcNow - oldest;
            var limit = options.Value.Health.MaxQueueAge;
            var text = $"{summary.Sum(s => s.Count)} waiting, oldest {(int)age.TotalSeconds} s";
            return Task.FromResult(age > limit
                ? HealthCheckResult.Unhealthy($"{text}, older than Postern:Health:MaxQueueAge ({limit})")
                : HealthCheckResult.Healthy(text));
        }
    }
}
