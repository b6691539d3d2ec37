using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>
/// A daemon (clamd, rspamd) run in the foreground as a child process: output kept for failure
/// messages, stopped with SIGTERM and, if it lingers, SIGKILL of it and its children.
/// </summary>
public sealed class ForegroundDaemon : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();

    private ForegroundDaemon(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public int Id => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>What the daemon printed so far.</summary>
    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    public static ForegroundDaemon Start(string executable, IEnumerable<string> arguments, string workingDirectory)
    {
        var path = new[] { "/usr/sbin", "/usr/bin", "/sbin", "/bin" }.Select(d => Path.Combine(d, executable)).FirstOrDefault(File.Exists)
            ?? throw new FileNotFoundException($"{executable} is not installed; scripts/test.sh installs it (PACKAGES)");
        var psi = new ProcessStartInfo(path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory,
        };
        foreach (var a in arguments)
            psi.ArgumentList.Add(a);
        var process = Process.Start(psi) ?? throw new InvalidOperationException($"{executable} did not start");
        process.StandardInput.Close();
        return new ForegroundDaemon(process);
    }

    /// <summary>Polls <paramref name="ready"/> until it holds; fails with the daemon's output if it exits first or the deadline passes.</summary>
    public async Task WaitUntilReadyAsync(Func<Task<bool>> ready, TimeSpan timeout, string what, Func<string>? log = null)
    {
        await Poll.UntilAsync(async () =>
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"{what} exited with {_process.ExitCode} before it was ready:\n{Output}{log?.Invoke()}");
            return await ready();
        }, timeout, what, () => Output + log?.Invoke());
    }

    /// <summary>SIGTERM, then SIGKILL of the whole tree after <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (_process.HasExited)
            return;
        ProcessInfo.Signal(_process.Id, 15);
        using var cts = new CancellationTokenSource(grace);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(5));
        _process.Dispose();
    }

    private void Append(string? line)
    {
        if (line is null)
            return;
        lock (_output)
        {
            if (_output.Length < 64 * 1024)
                _output.AppendLine(line);
        }
    }
}

/// <summary>
/// A private clamd (Debian's clamav-daemon) on a loopback TCP port and a unix socket, with only the
/// EICAR signature the repository ships (tests/Postern.Core.Tests/Scanning/data/eicar.ndb) as its
/// database: no freshclam, no network, ready in well under a second. Can be stopped and started
/// again on the same port and socket (an engine that goes away mid-run and comes back).
/// </summary>
public sealed class ClamdDaemon : IAsyncDisposable
{
    private readonly string _config;
    private ForegroundDaemon? _daemon;

    private ClamdDaemon(string directory, string config, int port)
    {
        Directory = directory;
        _config = config;
        Port = port;
    }

    public string Directory { get; }
    public int Port { get; }
    public string SocketPath => Path.Combine(Directory, "clamd.sock");

    /// <summary>Postern:Scanning:ClamAv:Endpoint for the TCP listener.</summary>
    public string TcpEndpoint => $"tcp://127.0.0.1:{Port}";

    /// <summary>Postern:Scanning:ClamAv:Endpoint for the unix socket.</summary>
    public string UnixEndpoint => $"unix:{SocketPath}";

    public bool IsRunning => _daemon is { HasExited: false };

    /// <summary>The signature name clamd reports for the shipped EICAR signature.</summary>
    public const string EicarSignature = "Test.EICAR.NDB.UNOFFICIAL";

    public static async Task<ClamdDaemon> StartAsync(TestDirectory directory)
    {
        var home = directory.Sub("clamd");
        var database = System.IO.Directory.CreateDirectory(Path.Combine(home, "db")).FullName;
        File.Copy(ScanSamples.EicarSignaturePath, Path.Combine(database, "eicar.ndb"));
        var port = FreePort.Next();
        var config = Path.Combine(home, "clamd.conf");
        await File.WriteAllTextAsync(config, $"""
            Foreground yes
            DatabaseDirectory {database}
            LocalSocket {Path.Combine(home, "clamd.sock")}
            TCPSocket {port}
            TCPAddr 127.0.0.1
            LogFile {Path.Combine(home, "clamd.log")}
            StreamMaxLength 25M
            MaxThreads 4
            SelfCheck 3600

            """);
        var clamd = new ClamdDaemon(home, config, port);
        try
        {
            await clamd.StartAsync();
        }
        catch
        {
            await clamd.DisposeAsync();
            throw;
        }
        return clamd;
    }

    /// <summary>Starts clamd (again) and waits until it answers PING on TCP and on the unix socket.</summary>
    public async Task StartAsync()
    {
        if (IsRunning)
            return;
        _daemon = ForegroundDaemon.Start("clamd", ["-c", _config], Directory);
        await _daemon.WaitUntilReadyAsync(async () => await PingAsync(tcp: true) && await PingAsync(tcp: false),
            TimeSpan.FromSeconds(30), $"clamd on 127.0.0.1:{Port} and {SocketPath}", Log);
    }

    /// <summary>Stops clamd (SIGTERM; it exits in about a second) and waits until it is gone.</summary>
    public async Task StopAsync()
    {
        if (_daemon is null)
            return;
        await _daemon.DisposeAsync();
        _daemon = null;
    }

    public string Log()
    {
        var path = Path.Combine(Directory, "clamd.log");
        return File.Exists(path) ? "\n--- clamd.log ---\n" + File.ReadAllText(path) : "";
    }

    public ValueTask DisposeAsync() => new(StopAsync());

    private async Task<bool> PingAsync(bool tcp)
    {
        try
        {
            using var socket = tcp
                ? new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
                : new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            EndPoint endPoint = tcp ? new IPEndPoint(IPAddress.Loopback, Port) : new UnixDomainSocketEndPoint(SocketPath);
            await socket.ConnectAsync(endPoint, cts.Token);
            await socket.SendAsync("zPING\0"u8.ToArray(), SocketFlags.None, cts.Token);
            var buffer = new byte[64];
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            return Encoding.ASCII.GetString(buffer, 0, n).TrimEnd('\0', '\n') == "PONG";
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or IOException)
        {
            return false;
        }
    }
}

/// <summary>
/// One private rspamd (Debian's rspamd 3.x) shared by the tests of a collection: the stock
/// /etc/rspamd config with a private local.d/override.d that turns off every module that would use
/// the network, points DNS at loopback and binds the normal worker to a free loopback port. The
/// compiled hyperscan cache is shared with Postern.Core.Tests (~/.cache/postern-tests/rspamd-hs-cache,
/// or POSTERN_TEST_RSPAMD_HS_CACHE): a cold start compiles patterns for ~20-30 s, a warm one takes seconds.
/// </summary>
public sealed class RspamdDaemon : IAsyncLifetime
{
    private static readonly string[] DisabledModules =
    [
        "rbl", "surbl", "emails", "hfilter", "once_received", "spf", "dkim", "dmarc", "arc", "asn", "fuzzy_check",
        "whitelist", "mx_check", "phishing", "multimap", "mid", "mime_types", "reputation", "url_redirector",
        "greylist", "ratelimit", "neural", "history_redis", "replies", "rspamd_update", "dkim_signing",
    ];

    private TestDirectory? _directory;
    private ForegroundDaemon? _daemon;

    public int Port { get; private set; }

    /// <summary>Postern:Scanning:Rspamd:Url.</summary>
    public string Url => $"http://127.0.0.1:{Port}";

    public static string HyperscanCache =>
        Environment.GetEnvironmentVariable("POSTERN_TEST_RSPAMD_HS_CACHE") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "postern-tests", "rspamd-hs-cache");

    public async Task InitializeAsync()
    {
        _directory = new TestDirectory("rspamd");
        var conf = _directory.Sub("conf");
        var local = System.IO.Directory.CreateDirectory(Path.Combine(conf, "local.d")).FullName;
        var @override = System.IO.Directory.CreateDirectory(Path.Combine(conf, "override.d")).FullName;
        foreach (var name in new[] { "db", "run", "log" })
            _directory.Sub(name);
        System.IO.Directory.CreateDirectory(HyperscanCache);
        foreach (var module in DisabledModules)
            await File.WriteAllTextAsync(Path.Combine(local, $"{module}.conf"), "enabled = false;\n");
        await File.WriteAllTextAsync(Path.Combine(local, "options.inc"), """
            dns { nameserver = ["127.0.0.1:53"]; timeout = 0.1s; retransmits = 1; }
            hs_cache_dir = "${HS_CACHE}/";

            """);
        await File.WriteAllTextAsync(Path.Combine(@override, "worker-normal.inc"), "bind_socket = \"127.0.0.1:${PORT}\";\ncount = 1;\n");
        await File.WriteAllTextAsync(Path.Combine(@override, "worker-controller.inc"), "enabled = false;\n");
        await File.WriteAllTextAsync(Path.Combine(@override, "worker-proxy.inc"), "enabled = false;\n");
        await File.WriteAllTextAsync(Path.Combine(@override, "logging.inc"), "level = \"warning\";\n");

        Port = FreePort.Next();
        List<string> arguments =
        [
            "-f", "-c", "/etc/rspamd/rspamd.conf",
            $"--var=LOCAL_CONFDIR={conf}", $"--var=DBDIR={_directory.PathOf("db")}", $"--var=RUNDIR={_directory.PathOf("run")}",
            $"--var=LOGDIR={_directory.PathOf("log")}", $"--var=HS_CACHE={HyperscanCache}", $"--var=PORT={Port}",
        ];
        // rspamd refuses to run its workers as root unless told to.
        if (Environment.IsPrivilegedProcess)
            arguments.Insert(0, "-i");
        _daemon = ForegroundDaemon.Start("rspamd", arguments, _directory.Path);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            await _daemon.WaitUntilReadyAsync(async () =>
            {
                try
                {
                    return (await http.GetStringAsync($"{Url}/ping")).Trim() == "pong";
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                {
                    return false;
                }
            }, TimeSpan.FromSeconds(120), $"rspamd on 127.0.0.1:{Port}", Log);
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    public string Log()
    {
        var path = _directory?.PathOf(Path.Combine("log", "rspamd.log"));
        return path is not null && File.Exists(path) ? "\n--- rspamd.log ---\n" + string.Join('\n', File.ReadLines(path).TakeLast(40)) : "";
    }

    public async Task DisposeAsync()
    {
        if (_daemon is not null)
            await _daemon.DisposeAsync();
        _daemon = null;
        _directory?.Dispose();
        _directory = null;
    }
}

/// <summary>The test classes that share one rspamd.</summary>
[CollectionDefinition(Name)]
public sealed class RspamdCollection : ICollectionFixture<RspamdDaemon>
{
    public const string Name = "rspamd";
}

/// <summary>Turns Postern's external engines on for the next `postern serve`, by environment (it overrides the config file).</summary>
public static class ScanningEngineSettings
{
    /// <summary>Postern:Scanning:ClamAv with <paramref name="endpoint"/> (tcp://… or unix:…) and short timeouts.</summary>
    public static void UseClamAv(this PosternProcess postern, string endpoint)
    {
        postern.Environment["Postern__Scanning__ClamAv__Enabled"] = "true";
        postern.Environment["Postern__Scanning__ClamAv__Endpoint"] = endpoint;
        postern.Environment["Postern__Scanning__ClamAv__ConnectTimeout"] = "00:00:02";
        postern.Environment["Postern__Scanning__ClamAv__ScanTimeout"] = "00:00:20";
    }

    /// <summary>Postern:Scanning:Rspamd with the normal worker at <paramref name="url"/>.</summary>
    public static void UseRspamd(this PosternProcess postern, string url)
    {
        postern.Environment["Postern__Scanning__Rspamd__Enabled"] = "true";
        postern.Environment["Postern__Scanning__Rspamd__Url"] = url;
        postern.Environment["Postern__Scanning__Rspamd__Timeout"] = "00:00:20";
    }
}
