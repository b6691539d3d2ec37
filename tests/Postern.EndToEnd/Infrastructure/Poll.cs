namespace Postern.EndToEnd.Infrastructure;

/// <summary>Waits for a condition by polling it until a deadline; never a bare sleep.</summary>
public static class Poll
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(50);

    /// <summary>Polls <paramref name="condition"/> until it holds; throws <see cref="TimeoutException"/> naming what was awaited.</summary>
    public static async Task UntilAsync(Func<bool> condition, TimeSpan timeout, string what, Func<string>? diagnostics = null)
    {
        await UntilAsync(() => Task.FromResult(condition()), timeout, what, diagnostics);
    }

    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, Func<string>? diagnostics = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (await condition())
                return;
            if (DateTime.UtcNow >= deadline)
            {
                var detail = diagnostics is null ? "" : Environment.NewLine + diagnostics();
                throw new TimeoutException($"Timed out after {timeout.TotalSeconds:0.#} s waiting for {what}.{detail}");
            }
            await Task.Delay(Interval);
        }
    }
}
