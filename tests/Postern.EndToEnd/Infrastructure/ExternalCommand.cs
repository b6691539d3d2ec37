using System.Diagnostics;
using System.Text;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>What a finished command printed and how it exited.</summary>
public sealed record CommandResult(string Command, int ExitCode, string StdOut, string StdErr)
{
    public bool Succeeded => ExitCode == 0;

    /// <summary>Throws with the whole output when the command failed.</summary>
    public CommandResult EnsureSuccess()
    {
        if (ExitCode != 0)
            throw new InvalidOperationException($"`{Command}` exited with {ExitCode}.\nstdout:\n{StdOut}\nstderr:\n{StdErr}");
        return this;
    }

    /// <summary>The last non-empty line of stdout.</summary>
    public string LastLine => StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? "";

    public override string ToString() => $"`{Command}` → {ExitCode}\nstdout:\n{StdOut}\nstderr:\n{StdErr}";
}

/// <summary>Runs a one-shot external program with a time limit and captures its output.</summary>
public static class ExternalCommand
{
    public static async Task<CommandResult> RunAsync(string fileName, IEnumerable<string> arguments, TimeSpan timeout,
        IReadOnlyDictionary<string, string>? environment = null, string? stdin = null, string? workingDirectory = null)
    {
        var args = arguments.ToList();
        var psi = new ProcessStartInfo(fileName)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? "",
        };
        foreach (var a in args)
            psi.ArgumentList.Add(a);
        if (environment is not null)
        {
            foreach (var (k, v) in environment)
                psi.Environment[k] = v;
        }

        var commandLine = fileName + " " + string.Join(' ', args.Select(a => a.Contains(' ') ? $"'{a}'" : a));
        using var process = new Process { StartInfo = psi };
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.Append(e.Data).Append('\n'); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.Append(e.Data).Append('\n'); };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        if (stdin is not null)
            await process.StandardInput.WriteAsync(stdin);
        process.StandardInput.Close();

        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"`{commandLine}` did not finish within {timeout.TotalSeconds:0} s.\nstdout:\n{stdout}\nstderr:\n{stderr}");
        }
        process.WaitForExit(); // drains the asynchronous output readers
        lock (stdout) lock (stderr)
            return new CommandResult(commandLine, process.ExitCode, stdout.ToString(), stderr.ToString());
    }
}
