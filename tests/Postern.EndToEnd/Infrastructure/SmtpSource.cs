using System.Diagnostics;
using System.Text;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>Postfix's smtp-source load generator running in the background.</summary>
public sealed class SmtpSource : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private SmtpSource(Process process)
    {
        _process = process;
    }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    /// <summary>
    /// smtp-source -s SESSIONS -m MESSAGES -F FILE -f FROM -t TO 127.0.0.1:PORT: sends the pre-formatted
    /// message in <paramref name="messageFile"/> <paramref name="messages"/> times over <paramref name="sessions"/> parallel sessions.
    /// </summary>
    public static SmtpSource Start(int port, string messageFile, int messages, int sessions, string from, string to)
    {
        var psi = new ProcessStartInfo("smtp-source")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "-s", sessions.ToString(), "-m", messages.ToString(), "-F", messageFile, "-f", from, "-t", to, $"127.0.0.1:{port}" })
            psi.ArgumentList.Add(a);
        var process = new Process { StartInfo = psi };
        var source = new SmtpSource(process);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (source._output) source._output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (source._output) source._output.AppendLine(e.Data); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return source;
    }

    /// <summary>Waits for smtp-source to finish; kills it past <paramref name="timeout"/> and returns false.</summary>
    public async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
            _process.WaitForExit();
            return true;
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
