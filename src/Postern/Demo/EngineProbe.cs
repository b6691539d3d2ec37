using System.Net.Sockets;
using System.Text;
using Postern.Core;

namespace Postern.Demo;

/// <summary>Which scanning daemons the demo can use: clamd (PING → PONG) and Rspamd's normal worker (/ping → pong).</summary>
internal sealed record EngineProbe(string? Clamd, string? Rspamd, string ClamdSummary, string RspamdSummary)
{
    public const string DebianClamdSocket = "/run/clamav/clamd.ctl";
    public const string DefaultRspamd = "http://127.0.0.1:11333";

    public bool Has(string engine) => engine switch
    {
        "clamav" => Clamd is not null,
        "rspamd" => Rspamd is not null,
        _ => true,
    };

    /// <summary>A daemon given explicitly must answer; the defaults are used only when they do.</summary>
    public static async Task<EngineProbe> FindAsync(string? clamd, string? rspamd, CancellationToken cancellationToken)
    {
        string? useClamd = null, useRspamd = null;
        string clamdSummary, rspamdSummary;
        if (clamd is "none" && rspamd is "none")
            return new EngineProbe(null, null, "engine not installed (--clamd none)", "engine not installed (--rspamd none)");
        if (clamd is "none" || rspamd is "none")
        {
            var other = await FindAsync(clamd is "none" ? null : clamd, rspamd is "none" ? null : rspamd, cancellationToken);
            return clamd is "none"
                ? other with { Clamd = null, ClamdSummary = "engine not installed (--clamd none)" }
                : other with { Rspamd = null, RspamdSummary = "engine not installed (--rspamd none)" };
        }
        var clamdTarget = clamd ?? "unix:" + DebianClamdSocket;
        if (await ClamdAnswersAsync(clamdTarget, cancellationToken))
            (useClamd, clamdSummary) = (clamdTarget, $"using {clamdTarget}");
        else if (clamd is not null)
            throw new PosternException($"--clamd '{clamd}' does not answer PING");
        else
            clamdSummary = "engine not installed (no clamd at " + DebianClamdSocket + ")";
        var rspamdTarget = (rspamd ?? DefaultRspamd).TrimEnd('/');
        if (await RspamdAnswersAsync(rspamdTarget, cancellationToken))
            (useRspamd, rspamdSummary) = (rspamdTarget, $"using {rspamdTarget}");
        else if (rspamd is not null)
            throw new PosternException($"--rspamd '{rspamd}' does not answer /ping");
        else
            rspamdSummary = "engine not installed (nothing answers at " + DefaultRspamd + ")";
        return new EngineProbe(useClamd, useRspamd, clamdSummary, rspamdSummary);
    }

    private static async Task<bool> ClamdAnswersAsync(string endpoint, CancellationToken cancellationToken)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(2));
            Socket socket;
            if (endpoint.StartsWith("tcp://", StringComparison.OrdinalIgnoreCase) || !endpoint.StartsWith("unix:", StringComparison.Ordinal) && !endpoint.StartsWith('/'))
            {
                var hostPort = endpoint.Replace("tcp://", "", StringComparison.OrdinalIgnoreCase);
                var colon = hostPort.LastIndexOf(':');
                socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await socket.ConnectAsync(hostPort[..colon], int.Parse(hostPort[(colon + 1)..], System.Globalization.CultureInfo.InvariantCulture), timeout.Token);
            }
            else
            {
                var path = endpoint.StartsWith("unix:", StringComparison.Ordinal) ? endpoint[5..] : endpoint;
                if (!File.Exists(path))
                    return false;
                socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), timeout.Token);
            }
            using (socket)
            {
                await socket.SendAsync("zPING\0"u8.ToArray(), timeout.Token);
                var buffer = new byte[16];
                var read = await socket.ReceiveAsync(buffer, timeout.Token);
                return Encoding.ASCII.GetString(buffer, 0, read).StartsWith("PONG", StringComparison.Ordinal);
            }
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or IOException or FormatException or ArgumentException)
        {
            return false;
        }
    }

    private static async Task<bool> RspamdAnswersAsync(string url, CancellationToken cancellationToken)
    {
        try
        {
            if (!Uri.TryCreate(url + "/ping", UriKind.Absolute, out var ping) || !ping.IsLoopback)
                return false; // The demo stays on this machine.
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            var text = await http.GetStringAsync(ping, cancellationToken);
            return text.Trim().StartsWith("pong", StringComparison.OrdinalIgnoreCase);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            return false;
        }
    }
}
