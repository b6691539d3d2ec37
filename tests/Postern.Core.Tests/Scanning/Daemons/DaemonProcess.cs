using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace Postern.Core.Tests.Scanning.Daemons;

/// <summary>
/// A real daemon (clamd, rspamd) started in the foreground for tests: its own scratch directory
/// under the temp dir (scripts/test.sh points TMPDIR inside the run folder and sweeps what a crashed
/// run leaves there), output captured for failure messages, readiness polled with a deadline, and
/// stopped with SIGTERM, then SIGKILL for it and its children if it lingers.
/// </summary>
internal sealed class DaemonProcess : IAsyncDisposable
{
    private const int SigTerm = 15;
    private readonly Process process;
    private readonly StringBuilder output = new();
    private readonly string? scratch;

    private DaemonProcess(Process process, string? scratch)
    {
        this.process = process;
        this.scratch = scratch;
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int Id => process.Id;

    public bool HasExited => process.HasExited;

    /// <summary>What the daemon printed so far, for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (output)
                return output.ToString();
        }
    }

    public static DaemonProcess Start(string executable, IEnumerable<string> arguments, string? scratch)
    {
        var info = new ProcessStartInfo(Resolve(executable))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = scratch ?? Path.GetTempPath(),
        };
        foreach (var argument in arguments)
            info.ArgumentList.Add(argument);
        var process = Process.Start(info) ?? throw new InvalidOperationException($"{executable} did not start");
        return new DaemonProcess(process, scratch);
    }

    /// <summary>A fresh scratch directory for one daemon, world-traversable (daemons may drop privileges).</summary>
    public static string NewScratchDirectory(string name)
    {
        var path = Path.Combine(Path.GetTempPath(), $"postern-{name}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(path);
        if (!OperatingSystem.IsWindows())
            File.SetUnixFileMode(path, (UnixFileMode)0b111_101_101);
        return path;
    }

    /// <summary>Polls <paramref name="ready"/> until it holds; fails with the daemon's output if it exits or the deadline passes.</summary>
    public async Task WaitUntilReadyAsync(Func<Task<bool>> ready, TimeSpan timeout, string what, Func<string>? log = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"{what} exited with {process.ExitCode} before it was ready:{Environment.NewLine}{Output}{log?.Invoke()}");
            if (await ready())
                return;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{what} was not ready within {timeout.TotalSeconds:0} s:{Environment.NewLine}{Output}{log?.Invoke()}");
            await Task.Delay(25);
        }
    }

    /// <summary>Stops the daemon (SIGTERM, then SIGKILL of the whole tree after <paramref name="grace"/>) and removes its scratch directory.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (!process.HasExited)
        {
            _ = Kill(process.Id, SigTerm);
            using var wait = new CancellationTokenSource(grace);
            try
            {
                await process.WaitForExitAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
            }
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }
        if (scratch is not null && Environment.GetEnvironmentVariable("POSTERN_TEST_KEEP") != "1")
        {
            try
            {
                Directory.Delete(scratch, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(5));
        process.Dispose();
    }

    /// <summary>A loopback port nothing listens on right now.</summary>
    public static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    private static string Resolve(string executable)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Concat(["/usr/sbin", "/usr/bin", "/sbin"]))
        {
            var candidate = Path.Combine(dir, executable);
            if (File.Exists(candidate))
                return candidate;
        }
        throw new FileNotFoundException($"{executable} is not installed; scripts/test.sh installs it (Debian package list PACKAGES)");
    }

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (output)
        {
            if (output.Length < 64 * 1024)
                output.AppendLine(line);
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
