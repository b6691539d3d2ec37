using Microsoft.Extensions.Logging;
using Postern.Core.Tenants;

namespace Postern.Core.Storage;

/// <summary>
/// Holds the current <see cref="RoutingTable"/> and reloads it when the configuration generation
/// changes, so CLI changes reach a running server within a second, without restart.
/// </summary>
public sealed class RoutingTableSource(TenantStore store, ILogger<RoutingTableSource> logger)
{
    private volatile RoutingTable _current = RoutingTable.Empty;

    public RoutingTable Current => _current;

    /// <summary>Raised after a new snapshot was loaded.</summary>
    public event Action<RoutingTable>? Reloaded;

    public void Load()
    {
        var generation = store.ReadGeneration();
        var table = new RoutingTable(generation, store.ListTenants(), store.ListDomains(), store.ListPolicyRules(), store.ListVips());
        _current = table;
        Reloaded?.Invoke(table);
    }

    /// <summary>Polls the generation until cancelled and reloads when it moved.</summary>
    public async Task WatchAsync(TimeSpan interval, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval);
        while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                if (store.ReadGeneration() != _current.Generation)
                {
                    Load();
                    logger.LogInformation("Configuration reloaded (generation {Generation}, {Tenants} tenants)", _current.Generation, _current.Tenants.Count());
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Could not reload configuration; keeping generation {Generation}", _current.Generation);
            }
        }
    }
}
