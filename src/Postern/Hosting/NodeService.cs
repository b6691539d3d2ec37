using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Postern.Core.Configuration;

namespace Postern.Hosting;

/// <summary>The relay node as a hosted service of `postern serve`'s host: started before HTTP, stopped after it.</summary>
public sealed class NodeService(IOptions<PosternOptions> options, ILoggerFactory loggerFactory) : IHostedService, IAsyncDisposable
{
    private PosternNode? _node;

    /// <summary>The running node (null before start).</summary>
    public PosternNode? Node => _node;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        _node = new PosternNode(options.Value, loggerFactory);
        await _node.StartAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_node is { } node)
        {
            _node = null;
            await node.DisposeAsync().ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync() => await StopAsync(CancellationToken.None).ConfigureAwait(false);
}
