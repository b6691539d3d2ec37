using Postern.Core.Configuration;

namespace Postern.Core.Tests.Scanning.Daemons;

/// <summary>
/// One private rspamd (Debian's rspamd 3.x) for the whole test run: the stock /etc/rspamd config with
/// a private local.d/override.d that turns off every module that would use the network (DNS lists,
/// SPF/DKIM/DMARC, fuzzy, redis-backed ones), points DNS at loopback, binds the normal worker to a
/// free loopback port and disables the controller and proxy. A cold start spends ~17-30 s compiling
/// hyperscan patterns, so the compiled cache lives in a persistent directory outside the run's temp
/// dir (~/.cache/postern-tests/rspamd-hs-cache, or POSTERN_TEST_RSPAMD_HS_CACHE): later starts take
/// well under a few seconds.
/// </summary>
public sealed class RspamdFixture : IAsyncLifetime
{
    /// <summary>Modules that reach the network (DNS, HTTP maps, redis) or need state the tests do not have.</summary>
    private static readonly string[] DisabledModules =
    [
        "rbl", "surbl", "emails", "hfilter", "once_received", "spf", "dkim", "dmarc", "arc", "asn", "fuzzy_check",
        "whitelist", "mx_check", "phishing", "multimap", "mid", "mime_types", "reputation", "url_redirector",
        "greylist", "ratelimit", "neural", "history_redis", "replies", "rspamd_update", "dkim_signing",
    ];

    private DaemonProcess? process;
    private string directory = "";

    public int Port { get; private set; }

    public string Url => $"http://127.0.0.1:{Port}";

    public RspamdOptions Options() => new()
    {
        Enabled = true,
        Url = Url,
        ConnectTimeout = TimeSpan.FromSeconds(2),
        Timeout = TimeSpan.FromSeconds(20),
    };

    public static string HyperscanCache =>
        Environment.GetEnvironmentVariable("POSTERN_TEST_RSPAMD_HS_CACHE") is { Length: > 0 } configured
            ? configured
            : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "postern-tests", "rspamd-hs-cache");

    public async Task InitializeAsync()
    {
        directory = DaemonProcess.NewScratchDirectory("rspamd");
        var conf = Path.Combine(directory, "conf");
        var local = Directory.CreateDirectory(Path.Combine(conf, "local.d")).FullName;
        var @override = Directory.CreateDirectory(Path.Combine(conf, "override.d")).FullName;
        foreach (var name in new[] { "db", "run", "log" })
            Directory.CreateDirectory(Path.Combine(directory, name));
        Directory.CreateDirectory(HyperscanCache);
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

        Port = DaemonProcess.FreePort();
        List<string> arguments =
        [
            "-f", "-c", "/etc/rspamd/rspamd.conf",
            $"--var=LOCAL_CONFDIR={conf}", $"--var=DBDIR={Path.Combine(directory, "db")}", $"--var=RUNDIR={Path.Combine(directory, "run")}",
            $"--var=LOGDIR={Path.Combine(directory, "log")}", $"--var=HS_CACHE={HyperscanCache}", $"--var=PORT={Port}",
        ];
        // rspamd refuses to run its workers as root unless told to; "insecure" keeps every path writable without chown.
        if (Environment.IsPrivilegedProcess)
            arguments.Insert(0, "-i");
        process = DaemonProcess.Start("rspamd", arguments, directory);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        try
        {
            await WaitAsync(http);
        }
        catch
        {
            await process.DisposeAsync();
            process = null;
            throw;
        }
    }

    private async Task WaitAsync(HttpClient http)
    {
        await process!.WaitUntilReadyAsync(async () =>
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

    public string Log()
    {
        var path = Path.Combine(directory, "log", "rspamd.log");
        return File.Exists(path) ? Environment.NewLine + string.Join(Environment.NewLine, File.ReadLines(path).TakeLast(40)) : "";
    }

    public async Task DisposeAsync()
    {
        if (process is not null)
            await process.DisposeAsync();
    }
}

[CollectionDefinition(Name)]
public sealed class RspamdCollection : ICollectionFixture<RspamdFixture>
{
    public const string Name = "rspamd";
}
