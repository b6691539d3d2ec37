using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>One SMTP reply: its code and every line's text (after "NNN-" / "NNN ").</summary>
public sealed record SmtpResponse(int Code, IReadOnlyList<string> Lines)
{
    public bool IsPositive => Code is >= 200 and < 400;
    public bool IsPermanentFailure => Code is >= 500 and < 600;

    /// <summary>"550 5.7.1 text" for the last line, as seen on the wire.</summary>
    public override string ToString() => $"{Code} {Lines.LastOrDefault()}";

    /// <summary>True when the reply is <paramref name="code"/> with <paramref name="enhanced"/> at the start of its text.</summary>
    public bool Is(int code, string enhanced) => Code == code && Lines.LastOrDefault()?.StartsWith(enhanced, StringComparison.Ordinal) == true;
}

/// <summary>
/// A line-level SMTP client for tests that need exact control of what goes on the wire
/// (address tricks, UTF-8 addresses, pipelining-free step by step sessions, STARTTLS).
/// </summary>
public sealed class RawSmtpClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private Stream _stream;
    private readonly TimeSpan _timeout;
    private readonly byte[] _buffer = new byte[8192];
    private int _start;
    private int _end;

    private RawSmtpClient(TcpClient tcp, TimeSpan timeout)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
        _timeout = timeout;
    }

    public SmtpResponse Greeting { get; private set; } = new(0, []);

    public bool IsTls => _stream is SslStream;

    /// <summary>The certificate the server presented on STARTTLS (null before).</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate? RemoteCertificate => (_stream as SslStream)?.RemoteCertificate;

    public static async Task<RawSmtpClient> ConnectAsync(int port, TimeSpan? timeout = null)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(System.Net.IPAddress.Loopback, port);
        var client = new RawSmtpClient(tcp, timeout ?? TimeSpan.FromSeconds(30));
        client.Greeting = await client.ReadResponseAsync();
        return client;
    }

    /// <summary>Sends one command line (CRLF appended, UTF-8) and reads the reply.</summary>
    public async Task<SmtpResponse> CommandAsync(string line)
    {
        await SendRawAsync(Encoding.UTF8.GetBytes(line + "\r\n"));
        return await ReadResponseAsync();
    }

    /// <summary>EHLO, then STARTTLS and EHLO again when <paramref name="startTls"/>.</summary>
    public async Task<SmtpResponse> HelloAsync(bool startTls = false, string name = "client.test")
    {
        var ehlo = await CommandAsync($"EHLO {name}");
        if (!startTls)
            return ehlo;
        var reply = await CommandAsync("STARTTLS");
        if (reply.Code != 220)
            throw new InvalidOperationException($"STARTTLS refused: {reply}");
        var ssl = new SslStream(_stream, leaveInnerStreamOpen: false, (_, _, _, _) => true);
        using var cts = new CancellationTokenSource(_timeout);
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "postern.test" }, cts.Token);
        _stream = ssl;
        _start = _end = 0;
        return await CommandAsync($"EHLO {name}");
    }

    /// <summary>DATA, the content (dot-stuffed, CRLF line ends) and the final dot; returns the reply to the dot (or to DATA if refused).</summary>
    public async Task<SmtpResponse> DataAsync(string content)
    {
        var reply = await CommandAsync("DATA");
        if (reply.Code != 354)
            return reply;
        var normalized = content.Replace("\r\n", "\n").TrimEnd('\n').Split('\n')
            .Select(l => l.StartsWith('.') ? "." + l : l);
        await SendRawAsync(Encoding.UTF8.GetBytes(string.Join("\r\n", normalized) + "\r\n.\r\n"));
        return await ReadResponseAsync();
    }

    public async Task SendRawAsync(byte[] data)
    {
        using var cts = new CancellationTokenSource(_timeout);
        await _stream.WriteAsync(data, cts.Token);
        await _stream.FlushAsync(cts.Token);
    }

    /// <summary>Reads one (possibly multi-line) reply; throws <see cref="IOException"/> if the server closes first.</summary>
    public async Task<SmtpResponse> ReadResponseAsync()
    {
        var lines = new List<string>();
        while (true)
        {
            var line = await ReadLineAsync() ?? throw new IOException(
                "connection closed by the server" + (lines.Count > 0 ? " after: " + string.Join(" | ", lines) : ""));
            if (line.Length < 3 || !int.TryParse(line.AsSpan(0, 3), out var code))
                throw new InvalidDataException($"malformed reply line: '{line}'");
            var last = line.Length == 3 || line[3] == ' ';
            lines.Add(line.Length > 4 ? line[4..] : "");
            if (last)
                return new SmtpResponse(code, lines);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _stream.DisposeAsync();
        }
        catch (Exception)
        {
            // Closing a connection the server already dropped.
        }
        _tcp.Dispose();
    }

    private async Task<string?> ReadLineAsync()
    {
        var line = new List<byte>();
        while (true)
        {
            if (_start == _end)
            {
                using var cts = new CancellationTokenSource(_timeout);
                _start = 0;
                try
                {
                    _end = await _stream.ReadAsync(_buffer, cts.Token);
                }
                catch (OperationCanceledException)
                {
                    throw new TimeoutException($"no reply within {_timeout.TotalSeconds:0} s");
                }
                if (_end == 0)
                    return null;
            }
            var b = _buffer[_start++];
            if (b == (byte)'\n')
                return Encoding.UTF8.GetString(line.ToArray()).TrimEnd('\r');
            line.Add(b);
        }
    }
}
