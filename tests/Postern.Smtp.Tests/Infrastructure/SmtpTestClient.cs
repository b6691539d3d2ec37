using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.RegularExpressions;

namespace Postern.Smtp.Tests.Infrastructure;

/// <summary>One reply: its code and its lines exactly as received (without CRLF).</summary>
internal sealed record TestReply(int Code, IReadOnlyList<string> Lines)
{
    /// <summary>The last line without the "ddd " prefix.</summary>
    public string Text => Lines[^1].Length > 4 ? Lines[^1][4..] : "";

    /// <summary>"ddd x.y.z" of the last line, for compact assertions.</summary>
    public string Status
    {
        get
        {
            var line = Lines[^1];
            var space = line.Length > 4 ? line.IndexOf(' ', 4) : -1;
            return space < 0 ? line : line[..space];
        }
    }

    public override string ToString() => string.Join(" | ", Lines);
}

/// <summary>
/// A raw SMTP client over TCP (and SslStream after STARTTLS) that reads replies with a deadline.
/// It never reads beyond a reply, so STARTTLS can switch streams without losing bytes.
/// </summary>
internal sealed partial class SmtpTestClient : IAsyncDisposable
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);

    private readonly TcpClient _tcp;
    private readonly NetworkStream _network;
    private Stream _stream;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;

    private SmtpTestClient(TcpClient tcp)
    {
        _tcp = tcp;
        _network = tcp.GetStream();
        _stream = _network;
    }

    public SslStream? Tls => _stream as SslStream;

    public static async Task<SmtpTestClient> ConnectAsync(IPEndPoint endPoint)
    {
        var tcp = new TcpClient(endPoint.AddressFamily) { NoDelay = true };
        try
        {
            using var cts = new CancellationTokenSource(DefaultTimeout);
            await tcp.ConnectAsync(endPoint, cts.Token);
            return new SmtpTestClient(tcp);
        }
        catch
        {
            tcp.Dispose();
            throw;
        }
    }

    public Task SendAsync(string text) => SendAsync(Encoding.UTF8.GetBytes(text));

    public async Task SendAsync(byte[] bytes)
    {
        using var cts = new CancellationTokenSource(DefaultTimeout);
        await _stream.WriteAsync(bytes, cts.Token);
        await _stream.FlushAsync(cts.Token);
    }

    public async Task<TestReply> CommandAsync(string line)
    {
        await SendAsync(line + "\r\n");
        return await ReadReplyAsync();
    }

    public async Task<TestReply> ReadReplyAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        var lines = new List<string>();
        while (true)
        {
            var line = await ReadLineAsync(cts.Token) ?? throw new IOException($"Connection closed after {lines.Count} reply lines: {string.Join(" | ", lines)}");
            lines.Add(line);
            if (line.Length < 3 || !int.TryParse(line.AsSpan(0, 3), out var code))
            {
                throw new InvalidDataException($"Malformed reply line: '{line}'");
            }
            if (line.Length == 3 || line[3] == ' ')
            {
                return new TestReply(code, lines);
            }
            if (line[3] != '-')
            {
                throw new InvalidDataException($"Malformed reply line: '{line}'");
            }
        }
    }

    /// <summary>Reads n replies (e.g. after a pipelined batch).</summary>
    public async Task<List<TestReply>> ReadRepliesAsync(int count)
    {
        var replies = new List<TestReply>(count);
        for (var i = 0; i < count; i++)
        {
            replies.Add(await ReadReplyAsync());
        }
        return replies;
    }

    /// <summary>A CRLF-terminated line, or null at end of stream.</summary>
    private async Task<string?> ReadLineAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var span = _buffer.AsSpan(_start, _end - _start);
            var lf = span.IndexOf((byte)'\n');
            if (lf >= 0)
            {
                if (lf == 0 || span[lf - 1] != '\r')
                {
                    throw new InvalidDataException("Server sent a line not ending in CRLF.");
                }
                var line = Encoding.UTF8.GetString(span[..(lf - 1)]);
                _start += lf + 1;
                return line;
            }
            if (_start > 0)
            {
                span.CopyTo(_buffer);
                _end -= _start;
                _start = 0;
            }
            if (_end == _buffer.Length)
            {
                throw new InvalidDataException("Reply line too long.");
            }
            var n = await _stream.ReadAsync(_buffer.AsMemory(_end), cancellationToken);
            if (n == 0)
            {
                return null;
            }
            _end += n;
        }
    }

    /// <summary>STARTTLS and the client side of the handshake.</summary>
    public async Task<SslStream> StartTlsAsync(X509Certificate2? clientCertificate = null)
    {
        var reply = await CommandAsync("STARTTLS");
        if (reply.Code != 220)
        {
            throw new InvalidOperationException($"STARTTLS refused: {reply}");
        }
        return await HandshakeAsync(clientCertificate);
    }

    public async Task<SslStream> HandshakeAsync(X509Certificate2? clientCertificate = null)
    {
        if (_end != _start)
        {
            throw new InvalidOperationException("Server sent bytes after the STARTTLS reply.");
        }
        var ssl = new SslStream(_network, leaveInnerStreamOpen: true);
        using var cts = new CancellationTokenSource(DefaultTimeout);
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "mx.test",
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            RemoteCertificateValidationCallback = static (_, _, _, _) => true,
            ClientCertificates = clientCertificate is null ? null : new X509CertificateCollection { clientCertificate },
            LocalCertificateSelectionCallback = clientCertificate is null ? null : (_, _, _, _, _) => clientCertificate,
        }, cts.Token);
        _stream = ssl;
        return ssl;
    }

    /// <summary>True when the server closes the connection (EOF or reset) before the deadline; any bytes read are discarded.</summary>
    public async Task<bool> WaitForCloseAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        try
        {
            while (true)
            {
                if (await ReadLineAsync(cts.Token) is null)
                {
                    return true;
                }
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }

    /// <summary>Reads until the server closes: true for a clean end of stream (FIN), false for a reset.</summary>
    public async Task<bool> ClosesCleanlyAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        try
        {
            while (await ReadLineAsync(cts.Token) is not null)
            {
            }
            return true;
        }
        catch (IOException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
            return false;
        }
    }

    /// <summary>EHLO, then MAIL/RCPT/DATA with the given content (already dot-stuffed, ending in CRLF).</summary>
    public async Task<TestReply> SendMessageAsync(string from, string[] to, string content)
    {
        Assert.Equal(250, (await CommandAsync($"MAIL FROM:<{from}>")).Code);
        foreach (var rcpt in to)
        {
            Assert.Equal(250, (await CommandAsync($"RCPT TO:<{rcpt}>")).Code);
        }
        Assert.Equal(354, (await CommandAsync("DATA")).Code);
        await SendAsync(content + ".\r\n");
        return await ReadReplyAsync();
    }

    [GeneratedRegex(@"^[245]\d\d[ -][245]\.\d{1,3}\.\d{1,3}( [^\r\n]*)?$")]
    public static partial Regex EnhancedReplyLine();

    /// <summary>Closes abortively: the server sees a TCP reset.</summary>
    public void ResetConnection()
    {
        _tcp.Client.LingerState = new LingerOption(true, 0);
        _tcp.Client.Close();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_stream is SslStream ssl)
            {
                await ssl.DisposeAsync();
            }
        }
        catch (IOException)
        {
        }
        _tcp.Dispose();
    }
}
