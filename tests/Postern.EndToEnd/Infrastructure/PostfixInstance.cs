using System.Text;
using System.Text.RegularExpressions;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>
/// A private Postfix instance under a test directory (own config, queue and data directories, its own
/// log file, a loopback-only smtpd on one port), started and stopped with `postfix -c DIR`.
/// /etc/postfix and the system instance are never touched.
/// Two roles: <see cref="StartM365SideAsync"/> plays Exchange Online handing mail to Postern over
/// mandatory TLS with a client certificate; <see cref="StartTenantMtaAsync"/> plays the tenant's
/// mail server and stores what it receives in a Maildir.
/// </summary>
public sealed partial class PostfixInstance : IAsyncDisposable
{
    private const int NobodyUid = 65534;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(20);

    private bool _running;

    /// <summary>Postfix's sockets (ROOT/spool/private/proxywrite) must fit a 107-byte sun_path.</summary>
    private const int MaxRootLength = 75;

    /// <summary>Where a deep checkout would make the socket paths too long, the instance lives here instead.</summary>
    public const string ShortRootPrefix = "/tmp/postern-pf-";

    private readonly string? _shortRoot;

    private PostfixInstance(string name, string root, int port)
    {
        Name = name;
        Root = root;
        Port = port;
        _shortRoot = root.StartsWith(ShortRootPrefix, StringComparison.Ordinal) ? root : null;
    }

    /// <summary>
    /// TEST_DIR/postfix-NAME, or a short /tmp/postern-pf-XXXXXXXX when that path is too long for Unix sockets.
    /// The short one records the run's TMPDIR in ".owner" (scripts/test.sh sweeps leftovers by it) and is
    /// linked from the test directory.
    /// </summary>
    private static string InstanceRoot(TestDirectory directory, string name)
    {
        var root = Path.Combine(directory.Path, "postfix-" + name);
        if (root.Length <= MaxRootLength)
            return directory.Sub("postfix-" + name);
        var shortRoot = ShortRootPrefix + Guid.NewGuid().ToString("N")[..8];
        Directory.CreateDirectory(shortRoot);
        File.SetUnixFileMode(shortRoot, (UnixFileMode)0x1ED); // 755
        File.WriteAllText(Path.Combine(shortRoot, ".owner"), Path.GetTempPath().TrimEnd('/') + "\n");
        File.CreateSymbolicLink(root, shortRoot);
        return shortRoot;
    }

    public string Name { get; }
    public string Root { get; }

    /// <summary>The loopback port its smtpd listens on.</summary>
    public int Port { get; }

    public string ConfigDirectory => Path.Combine(Root, "etc");
    public string QueueDirectory => Path.Combine(Root, "spool");
    public string LogPath => Path.Combine(Root, "maillog");

    /// <summary>Tenant MTA only: the Maildir every accepted message is delivered to.</summary>
    public string MaildirPath => Path.Combine(Root, "mail", "maildir");

    /// <summary>
    /// Exchange Online's part: accepts anything from loopback on its port and relays it all to
    /// [127.0.0.1]:<paramref name="relayPort"/> with STARTTLS required and <paramref name="clientCertificate"/>
    /// presented, retrying every few seconds.
    /// </summary>
    public static async Task<PostfixInstance> StartM365SideAsync(TestDirectory directory, int relayPort, TestCertificate clientCertificate, string name = "m365")
    {
        var instance = new PostfixInstance(name, InstanceRoot(directory, name), FreePort.Next());
        instance.WriteConfiguration(
            myHostName: "m365-sim.test",
            roleSettings:
            [
                "smtpd_tls_security_level = none",
                "relay_domains =",
                $"relayhost = [127.0.0.1]:{relayPort}",
                "smtp_tls_security_level = encrypt",
                $"smtp_tls_chain_files = {clientCertificate.KeyPath}, {clientCertificate.CertificatePath}",
                "smtp_tls_loglevel = 1",
                "smtp_connect_timeout = 5s",
                "queue_run_delay = 1s",
                "minimal_backoff_time = 1s",
                "maximal_backoff_time = 5s",
                "bounce_queue_lifetime = 0",
                "maximal_queue_lifetime = 1h",
            ],
            extraServices: []);
        await instance.StartAsync();
        return instance;
    }

    /// <summary>
    /// The tenant's mail server: STARTTLS offered with its own certificate, client certificates asked for
    /// and recorded in its Received header, mail for <paramref name="domains"/> stored in <see cref="MaildirPath"/>.
    /// <paramref name="extraSettings"/> are more main.cf lines, e.g. <c>smtpd_discard_ehlo_keywords = chunking</c> for a next hop without BDAT.
    /// </summary>
    public static async Task<PostfixInstance> StartTenantMtaAsync(TestDirectory directory, IEnumerable<string> domains, TestCertificate serverCertificate, string name = "tenant",
        IEnumerable<string>? extraSettings = null)
    {
        var instance = new PostfixInstance(name, InstanceRoot(directory, name), FreePort.Next());
        var mailBase = Path.Combine(instance.Root, "mail");
        Directory.CreateDirectory(mailBase);
        // The virtual delivery agent writes as the mapped uid (nobody).
        File.SetUnixFileMode(mailBase, (UnixFileMode)0x1FF);
        instance.WriteConfiguration(
            myHostName: "tenant-mta.test",
            roleSettings:
            [
                "smtpd_tls_security_level = may",
                $"smtpd_tls_chain_files = {serverCertificate.KeyPath}, {serverCertificate.CertificatePath}",
                "smtpd_tls_ask_ccert = yes",
                "smtpd_tls_received_header = yes",
                "smtpd_tls_loglevel = 1",
                "relay_domains =",
                $"virtual_mailbox_domains = {string.Join(", ", domains)}",
                $"virtual_mailbox_base = {mailBase}",
                "virtual_mailbox_maps = static:maildir/",
                $"virtual_uid_maps = static:{NobodyUid}",
                $"virtual_gid_maps = static:{NobodyUid}",
                .. extraSettings ?? [],
            ],
            extraServices: ["virtual   unix  -       n       n       -       -       virtual"]);
        await instance.StartAsync();
        return instance;
    }

    /// <summary>Starts (or restarts) the instance and waits until its smtpd accepts.</summary>
    public async Task StartAsync()
    {
        Directory.CreateDirectory(QueueDirectory);
        var result = await Postfix("start");
        if (!result.Succeeded)
        {
            // Postfix prints why only to a terminal: ask `postfix check` under script(1) so the reason lands in the failure.
            var check = await Run("script", "-qec", $"postfix -c {ConfigDirectory} check", "/dev/null");
            throw new InvalidOperationException($"postfix -c {ConfigDirectory} start failed.\n{result}\npostfix check said:\n{check}\n{ReadLogTail()}");
        }
        _running = true;
        await FreePort.WaitUntilAcceptingAsync(Port, StartTimeout, $"postfix '{Name}'", () => ReadLogTail());
    }

    /// <summary>`postfix stop`, then waits until the master process is gone (aborting it past the deadline).</summary>
    public async Task StopAsync()
    {
        if (!_running)
            return;
        _running = false;
        var pid = MasterPid();
        await Postfix("stop");
        if (pid is null)
            return;
        try
        {
            await Poll.UntilAsync(() => !ProcessInfo.IsAlive(pid.Value), StopTimeout, $"postfix '{Name}' master {pid} to exit");
        }
        catch (TimeoutException)
        {
            await Postfix("abort");
            ProcessInfo.Signal(pid.Value, 9);
            await Poll.UntilAsync(() => !ProcessInfo.IsAlive(pid.Value), StopTimeout, $"postfix '{Name}' master {pid} to die");
        }
    }

    /// <summary>`postqueue -p` output: what is still waiting in this instance's queue.</summary>
    public async Task<string> QueueListingAsync() => (await Run("postqueue", "-c", ConfigDirectory, "-p")).StdOut;

    /// <summary>`postqueue -f`: attempt every deferred message now.</summary>
    public Task FlushAsync() => Run("postqueue", "-c", ConfigDirectory, "-f");

    /// <summary>Tenant MTA: the messages delivered so far, oldest first.</summary>
    public IReadOnlyList<string> DeliveredMessages()
    {
        var dir = Path.Combine(MaildirPath, "new");
        if (!Directory.Exists(dir))
            return [];
        return Directory.GetFiles(dir)
            .Select(f => new FileInfo(f))
            .OrderBy(f => f.LastWriteTimeUtc).ThenBy(f => f.Name, StringComparer.Ordinal)
            .Select(f => File.ReadAllText(f.FullName))
            .ToList();
    }

    /// <summary>Tenant MTA: waits until at least <paramref name="count"/> messages were delivered and returns them all.</summary>
    public async Task<IReadOnlyList<string>> WaitForMessagesAsync(int count, TimeSpan timeout, Func<string>? diagnostics = null)
    {
        await Poll.UntilAsync(() => DeliveredMessages().Count >= count, timeout,
            $"{count} message(s) in the Maildir of postfix '{Name}'",
            () => ReadLogTail() + (diagnostics is null ? "" : "\n" + diagnostics()));
        return DeliveredMessages();
    }

    /// <summary>The queue ids the next hop gave in "250 ... queued as ID" replies, from this instance's log.</summary>
    public IReadOnlyList<string> RelayedQueueIds()
        => QueuedAs().Matches(ReadLog()).Select(m => m.Groups[1].Value).ToList();

    public string ReadLog()
    {
        if (!File.Exists(LogPath))
            return "";
        using var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return new StreamReader(stream).ReadToEnd();
    }

    public string ReadLogTail(int lines = 40)
        => $"--- postfix '{Name}' log ({LogPath}), last {lines} lines ---\n" + string.Join('\n', ReadLog().Split('\n').TakeLast(lines));

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        if (_shortRoot is not null && Environment.GetEnvironmentVariable("POSTERN_E2E_KEEP") != "1")
        {
            try
            {
                Directory.Delete(_shortRoot, recursive: true);
            }
            catch (IOException)
            {
                // A daemon that outlived the stop may still write here; scripts/test.sh sweeps it.
            }
        }
    }

    private int? MasterPid()
    {
        var pidFile = Path.Combine(QueueDirectory, "pid", "master.pid");
        try
        {
            return int.TryParse(File.ReadAllText(pidFile).Trim(), out var pid) ? pid : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    private void WriteConfiguration(string myHostName, IEnumerable<string> roleSettings, IEnumerable<string> extraServices)
    {
        Directory.CreateDirectory(ConfigDirectory);
        var main = new StringBuilder();
        foreach (var line in new[]
        {
            "compatibility_level = 3.6",
            $"config_directory = {ConfigDirectory}",
            $"queue_directory = {QueueDirectory}",
            $"data_directory = {Path.Combine(Root, "lib")}",
            $"maillog_file = {LogPath}",
            $"maillog_file_prefixes = /var, /dev/stdout, {Root}",
            $"syslog_name = postfix-{Name}",
            "mail_owner = postfix",
            "setgid_group = postdrop",
            $"myhostname = {myHostName}",
            $"mydomain = {myHostName}",
            "myorigin = $myhostname",
            "mydestination =",
            "local_recipient_maps =",
            "local_transport = error:5.1.1 local delivery disabled",
            "alias_maps =",
            "alias_database =",
            "inet_interfaces = loopback-only",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions =",
            "smtpd_peername_lookup = no",
            "smtp_dns_support_level = disabled",
            "smtp_host_lookup = native",
            "smtp_tls_session_cache_database =",
            "smtpd_tls_session_cache_database =",
        })
        {
            main.Append(line).Append('\n');
        }
        foreach (var line in roleSettings)
            main.Append(line).Append('\n');
        File.WriteAllText(Path.Combine(ConfigDirectory, "main.cf"), main.ToString());

        var master = new StringBuilder();
        master.Append($"127.0.0.1:{Port} inet n  -       n       -       -       smtpd\n");
        foreach (var line in StandardServices.Concat(extraServices))
            master.Append(line).Append('\n');
        File.WriteAllText(Path.Combine(ConfigDirectory, "master.cf"), master.ToString());
    }

    private static readonly string[] StandardServices =
    [
        "pickup    unix  n       -       n       60      1       pickup",
        "cleanup   unix  n       -       n       -       0       cleanup",
        "qmgr      unix  n       -       n       300     1       qmgr",
        "tlsmgr    unix  -       -       n       1000?   1       tlsmgr",
        "rewrite   unix  -       -       n       -       -       trivial-rewrite",
        "bounce    unix  -       -       n       -       0       bounce",
        "defer     unix  -       -       n       -       0       bounce",
        "trace     unix  -       -       n       -       0       bounce",
        "verify    unix  -       -       n       -       1       verify",
        "flush     unix  n       -       n       1000?   0       flush",
        "proxymap  unix  -       -       n       -       -       proxymap",
        "proxywrite unix -       -       n       -       1       proxymap",
        "smtp      unix  -       -       n       -       -       smtp",
        "relay     unix  -       -       n       -       -       smtp",
        "showq     unix  n       -       n       -       -       showq",
        "error     unix  -       -       n       -       -       error",
        "retry     unix  -       -       n       -       -       error",
        "discard   unix  -       -       n       -       -       discard",
        "anvil     unix  -       -       n       -       1       anvil",
        "scache    unix  -       -       n       -       1       scache",
        "postlog   unix-dgram n  -       n       -       1       postlogd",
    ];

    private Task<CommandResult> Postfix(string command) => Run("postfix", "-c", ConfigDirectory, command);

    private static Task<CommandResult> Run(string program, params string[] args)
        => ExternalCommand.RunAsync(program, args, TimeSpan.FromSeconds(60));

    [GeneratedRegex(@"status=sent \(250 [^)]*?queued as (\S+?)\)")]
    private static partial Regex QueuedAs();
}
