using System.Diagnostics;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>
/// The built `postern` (postern.dll run by `dotnet`) as a child process: one-shot CLI commands against
/// a data directory, and `postern serve` as a long-running server whose output goes to a log file.
/// </summary>
public sealed class PosternProcess : IAsyncDisposable
{
    private static readonly Lazy<string> LocatedDll = new(LocateDll);
    private static readonly TimeSpan CliTimeout = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly object _logLock = new();
    private Process? _server;
    private StreamWriter? _log;
    private int _serveCount;

    public PosternProcess(string dataDirectory, string logPath)
    {
        DataDirectory = dataDirectory;
        LogPath = logPath;
        Directory.CreateDirectory(dataDirectory);
    }

    public string DataDirectory { get; }

    /// <summary>stdout and stderr of every `serve` this object started, for diagnostics.</summary>
    public string LogPath { get; }

    public string? ConfigPath { get; private set; }

    public PosternConfig? Config { get; private set; }

    /// <summary>Extra environment for every command (e.g. Postern__Section__Key overrides).</summary>
    public Dictionary<string, string> Environment { get; } = new();

    public int? ServerPid => _server is { HasExited: false } ? _server.Id : null;

    public bool IsServing => _server is { HasExited: false };

    /// <summary>postern.dll: $POSTERN_DLL, else src/Postern/bin/CONFIG/net10.0, else next to the test assembly.</summary>
    public static string DllPath => LocatedDll.Value;

    /// <summary>Runs `postern ARGS --data-dir DIR` to completion.</summary>
    public CommandResult RunCli(params string[] args) => RunCliAsync(args).GetAwaiter().GetResult();

    public Task<CommandResult> RunCliAsync(params string[] args)
        => ExternalCommand.RunAsync("dotnet", [DllPath, .. args, "--data-dir", DataDirectory], CliTimeout, BuildEnvironment());

    /// <summary>
    /// Runs `postern ARGS` exactly as given, without the --data-dir of this object, in <paramref name="workingDirectory"/>:
    /// for the embedded defaults and for data directories that cannot be created.
    /// </summary>
    public Task<CommandResult> RunCliVerbatimAsync(string workingDirectory, params string[] args)
        => ExternalCommand.RunAsync("dotnet", [DllPath, .. args], CliTimeout, BuildEnvironment(), workingDirectory: workingDirectory);

    /// <summary>
    /// Writes <paramref name="config"/> next to the data directory, starts
    /// `postern serve --data-dir D --smtp FIRST --config FILE` and waits until every listener accepts.
    /// </summary>
    public async Task StartServeAsync(PosternConfig config)
    {
        if (IsServing)
            throw new InvalidOperationException("postern serve is already running");
        Config = config;
        ConfigPath = Path.Combine(Path.GetDirectoryName(DataDirectory.TrimEnd('/'))!, "postern.json");
        await File.WriteAllTextAsync(ConfigPath, config.ToJson());

        var process = Launch(["serve", "--data-dir", DataDirectory, "--smtp", config.First.EndPoint, "--config", ConfigPath], workingDirectory: null);
        var deadline = DateTime.UtcNow + StartTimeout;
        // Kestrel (/metrics, /healthz) starts after the node: waiting for it waits for the whole host.
        foreach (var listener in config.Listeners.Append(new PosternListener("http", config.HttpPort)))
        {
            await Poll.UntilAsync(
                () => process.HasExited || FreePort.Accepts(listener.Port),
                deadline - DateTime.UtcNow > TimeSpan.Zero ? deadline - DateTime.UtcNow : TimeSpan.Zero,
                $"postern serve to accept on {listener.EndPoint} ({listener.Name})",
                () => ReadLogTail());
            if (process.HasExited)
            {
                // The parameterless wait also waits for the redirected output to be read to its end, so the log holds
                // the process's last words (its error line) before it is quoted.
                process.WaitForExit();
                throw new InvalidOperationException($"postern serve exited with {process.ExitCode} before accepting on {listener.EndPoint}.\n{ReadLogTail()}");
            }
        }
    }

    /// <summary>
    /// Starts a bare `postern serve` (no --data-dir, --smtp or --config) in <paramref name="workingDirectory"/> and
    /// waits until its log says it listens on <paramref name="endPoint"/>: the log, not a connect, so a stranger
    /// on that port is never mistaken for Postern.
    /// </summary>
    public async Task StartServeWithDefaultsAsync(string workingDirectory, string endPoint)
    {
        if (IsServing)
            throw new InvalidOperationException("postern serve is already running");
        var process = Launch(["serve"], workingDirectory);
        await Poll.UntilAsync(() => process.HasExited || ReadLog().Contains($"Listening on {endPoint} "), StartTimeout,
            $"postern serve to log that it listens on {endPoint}", () => ReadLogTail());
        if (process.HasExited)
            throw new InvalidOperationException($"postern serve exited with {process.ExitCode} before listening on {endPoint}.\n{ReadLogTail()}");
    }

    private Process Launch(IReadOnlyList<string> args, string? workingDirectory)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? "",
        };
        foreach (var a in new[] { DllPath }.Concat(args))
            psi.ArgumentList.Add(a);
        foreach (var (k, v) in BuildEnvironment())
            psi.Environment[k] = v;

        lock (_logLock)
        {
            _log ??= new StreamWriter(new FileStream(LogPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
            _log.WriteLine($"=== serve #{++_serveCount} at {DateTime.UtcNow:O}: {string.Join(' ', psi.ArgumentList)}");
        }
        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => WriteLog(e.Data);
        process.ErrorDataReceived += (_, e) => WriteLog(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.StandardInput.Close();
        _server = process;
        return process;
    }

    /// <summary>SIGKILL: the server gets no chance to clean up (the crash the spool must survive).</summary>
    public void Kill()
    {
        var process = _server;
        if (process is null)
            return;
        if (!process.HasExited)
        {
            WriteLog($"=== test sent SIGKILL at {DateTime.UtcNow:O}");
            process.Kill(entireProcessTree: true);
        }
        process.WaitForExit();
        process.Dispose();
        _server = null;
    }

    /// <summary>SIGTERM and wait for a graceful exit; SIGKILL after <paramref name="timeout"/> (default 20 s).</summary>
    public async Task StopAsync(TimeSpan? timeout = null)
    {
        var process = _server;
        if (process is null)
            return;
        if (!process.HasExited)
        {
            WriteLog($"=== test sent SIGTERM at {DateTime.UtcNow:O}");
            ProcessInfo.Signal(process.Id, 15);
            using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
            try
            {
                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                WriteLog("=== no exit after SIGTERM; killing");
            }
        }
        Kill();
    }

    public string ReadLog()
    {
        lock (_logLock)
        {
            if (!File.Exists(LogPath))
                return "";
            using var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            return new StreamReader(stream).ReadToEnd();
        }
    }

    /// <summary>The last lines of the server log, for failure messages.</summary>
    public string ReadLogTail(int lines = 60)
    {
        var all = ReadLog().Split('\n');
        return $"--- postern log ({LogPath}), last {lines} lines ---\n" + string.Join('\n', all.TakeLast(lines));
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        await Task.CompletedTask;
        lock (_logLock)
        {
            _log?.Dispose();
            _log = null;
        }
    }

    private void WriteLog(string? line)
    {
        if (line is null)
            return;
        lock (_logLock)
            _log?.WriteLine(line);
    }

    private Dictionary<string, string> BuildEnvironment()
    {
        var env = new Dictionary<string, string>
        {
            ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
            ["DOTNET_NOLOGO"] = "1",
            ["DOTNET_gcServer"] = "0",
        };
        foreach (var (k, v) in Environment)
            env[k] = v;
        return env;
    }

    private static string LocateDll()
    {
        var overridden = System.Environment.GetEnvironmentVariable("POSTERN_DLL");
        if (!string.IsNullOrEmpty(overridden))
            return File.Exists(overridden) ? overridden : throw new FileNotFoundException($"POSTERN_DLL points at a missing file: {overridden}");

        var baseDir = AppContext.BaseDirectory.TrimEnd('/');
        var framework = Path.GetFileName(baseDir);                                   // net10.0
        var configuration = Path.GetFileName(Path.GetDirectoryName(baseDir)) ?? "Release"; // Release / Debug
        var candidates = new List<string>();
        for (var dir = new DirectoryInfo(baseDir); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Postern.slnx")))
            {
                candidates.Add(Path.Combine(dir.FullName, "src", "Postern", "bin", configuration, framework, "postern.dll"));
                break;
            }
        }
        candidates.Add(Path.Combine(baseDir, "postern.dll"));
        foreach (var candidate in candidates)
        {
            if (File.Exists(candidate) && File.Exists(Path.ChangeExtension(candidate, ".runtimeconfig.json")))
                return candidate;
        }
        throw new FileNotFoundException("postern.dll not found; build the solution first. Looked in: " + string.Join(", ", candidates));
    }
}
