using Postern.Core.Configuration;
using Postern.Core.Scanning.Engines;

namespace Postern.Core.Tests.Scanning.Daemons;

/// <summary>
/// A private clamd (Debian's clamav-daemon) on a loopback port and a unix socket, with only the
/// EICAR signature the tests ship as its database: no freshclam, no network, ready in milliseconds.
/// Runs as the invoking user (clamd only drops privileges when its config names a User).
/// </summary>
internal sealed class ClamdInstance : IAsyncDisposable
{
    private readonly DaemonProcess process;

    private ClamdInstance(DaemonProcess process, string directory, int port)
    {
        this.process = process;
        Directory = directory;
        Port = port;
    }

    public string Directory { get; }
    public int Port { get; }
    public string SocketPath => Path.Combine(Directory, "clamd.sock");

    public ClamAvOptions TcpOptions(long maxStreamLength = 25L * 1024 * 1024) => new()
    {
        Enabled = true,
        Endpoint = $"tcp://127.0.0.1:{Port}",
        ConnectTimeout = TimeSpan.FromSeconds(2),
        ScanTimeout = TimeSpan.FromSeconds(15),
        MaxStreamLength = maxStreamLength,
    };

    public ClamAvOptions UnixOptions() => new()
    {
        Enabled = true,
        Endpoint = $"unix:{SocketPath}",
        ConnectTimeout = TimeSpan.FromSeconds(2),
        ScanTimeout = TimeSpan.FromSeconds(15),
    };

    /// <param name="streamMaxLength">clamd's StreamMaxLength (its default is 100M; Debian's config says 25M).</param>
    public static async Task<ClamdInstance> StartAsync(string streamMaxLength = "25M")
    {
        var directory = DaemonProcess.NewScratchDirectory("clamd");
        var database = System.IO.Directory.CreateDirectory(Path.Combine(directory, "db")).FullName;
        File.Copy(TestFiles.EicarSignaturePath, Path.Combine(database, "eicar.ndb"));
        var port = DaemonProcess.FreePort();
        var config = Path.Combine(directory, "clamd.conf");
        await File.WriteAllTextAsync(config, $"""
            Foreground yes
            DatabaseDirectory {database}
            LocalSocket {Path.Combine(directory, "clamd.sock")}
            TCPSocket {port}
            TCPAddr 127.0.0.1
            LogFile {Path.Combine(directory, "clamd.log")}
            StreamMaxLength {streamMaxLength}
            MaxThreads 4
            SelfCheck 3600

            """);
        var process = DaemonProcess.Start("clamd", ["-c", config], directory);
        var instance = new ClamdInstance(process, directory, port);
        var client = new ClamdClient(instance.TcpOptions());
        try
        {
            await process.WaitUntilReadyAsync(async () =>
            {
                try
                {
                    return await client.PingAsync() == "PONG";
                }
                catch (ClamdException)
                {
                    return false;
                }
            }, TimeSpan.FromSeconds(30), $"clamd on 127.0.0.1:{port}", instance.Log);
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
        return instance;
    }

    public string Log()
    {
        var path = Path.Combine(Directory, "clamd.log");
        return File.Exists(path) ? Environment.NewLine + File.ReadAllText(path) : "";
    }

    /// <summary>Stops clamd at once (SIGTERM; it takes about a second to exit cleanly).</summary>
    public Task StopAsync() => process.StopAsync(TimeSpan.FromSeconds(5));

    public ValueTask DisposeAsync() => process.DisposeAsync();
}

/// <summary>One clamd shared by the tests of a class.</summary>
public sealed class ClamdFixture : IAsyncLifetime
{
    internal ClamdInstance Clamd { get; private set; } = null!;

    public async Task InitializeAsync() => Clamd = await ClamdInstance.StartAsync();

    public async Task DisposeAsync() => await Clamd.DisposeAsync();
}
