using Xunit.Abstractions;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>
/// Base of every end-to-end test: a scratch directory, a Postern data directory and process, and
/// everything the test starts, stopped in reverse order afterwards (also after failures). Logs of the
/// servers involved go to the test output.
/// </summary>
public abstract class EndToEndTest : IAsyncLifetime
{
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly List<Func<string>> _diagnostics = [];

    protected EndToEndTest(ITestOutputHelper output)
    {
        Output = output;
        Directory = new TestDirectory(GetType().Name);
        Postern = new PosternProcess(Directory.Sub("data"), Directory.PathOf("postern.log"));
        _diagnostics.Add(() => Postern.ReadLogTail(80));
    }

    protected ITestOutputHelper Output { get; }

    protected TestDirectory Directory { get; }

    protected PosternProcess Postern { get; }

    /// <summary>Stops <paramref name="resource"/> when the test ends.</summary>
    protected T Own<T>(T resource) where T : IAsyncDisposable
    {
        _owned.Add(resource);
        if (resource is PostfixInstance postfix)
            _diagnostics.Add(() => postfix.ReadLogTail());
        return resource;
    }

    /// <summary>Text written to the test output at the end (server logs and the like).</summary>
    protected void AddDiagnostics(Func<string> diagnostics) => _diagnostics.Add(diagnostics);

    /// <summary>All diagnostics now, for failure messages of waits.</summary>
    protected string Diagnostics() => string.Join("\n", _diagnostics.Select(d => Safe(d)));

    /// <summary>The standard relay set-up: sink, catch-all DNS, Postern with two tenants (see <see cref="RelayHarness"/>).</summary>
    protected async Task<RelayHarness> StartRelayAsync(PosternConfig? config = null)
        => Own(await RelayHarness.StartAsync(Directory, Postern, config));

    public virtual Task InitializeAsync() => Task.CompletedTask;

    public virtual async Task DisposeAsync()
    {
        try
        {
            Output.WriteLine(Diagnostics());
        }
        catch (InvalidOperationException)
        {
            // No test is running any more (output helper closed).
        }
        await Postern.StopAsync(TimeSpan.FromSeconds(10));
        for (var i = _owned.Count - 1; i >= 0; i--)
        {
            try
            {
                await _owned[i].DisposeAsync();
            }
            catch (Exception e)
            {
                Output.WriteLine($"cleanup of {_owned[i].GetType().Name} failed: {e.Message}");
            }
        }
        await Postern.DisposeAsync();
        Directory.Dispose();
    }

    private static string Safe(Func<string> f)
    {
        try
        {
            return f();
        }
        catch (Exception e)
        {
            return $"(diagnostics unavailable: {e.Message})";
        }
    }
}
