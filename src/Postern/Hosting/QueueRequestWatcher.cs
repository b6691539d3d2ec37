using Microsoft.Extensions.Logging;
using Postern.Core.Delivery;
using Postern.Core.Storage;

namespace Postern.Hosting;

/// <summary>Carries out `postern queue retry` requests the CLI leaves in the database.</summary>
public sealed class QueueRequestWatcher(PosternDatabase database, DeliveryScheduler scheduler, ILogger<QueueRequestWatcher> logger)
{
    public async Task WatchAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval);
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                using var connection = database.Open();
                var requests = new List<(long Id, string QueueId)>();
                using (var read = connection.CreateCommand())
                {
                    read.CommandText = "SELECT id, queue_id FROM queue_requests ORDER BY id";
                    using var reader = read.ExecuteReader();
                    while (reader.Read())
                        requests.Add((reader.GetInt64(0), reader.GetString(1)));
                }
                foreach (var (id, queueId) in requests)
                {
                    var moved = scheduler.RetryNow(queueId);
                    logger.LogInformation("Retry requested for {QueueId}: {Count} messages moved to delivery now", queueId, moved);
                    using var delete = connection.CreateCommand();
                    delete.CommandText = "DELETE FROM queue_requests WHERE id = $id";
                    delete.Parameters.AddWithValue("$id", id);
                    delete.ExecuteNonQuery();
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Could not read queue requests");
            }
        }
    }
}
