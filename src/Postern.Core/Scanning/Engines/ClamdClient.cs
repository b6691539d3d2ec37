using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Postern.Core.Configuration;

namespace Postern.Core.Scanning.Engines;

/// <summary>Where clamd listens: a TCP host and port, or a unix socket path.</summary>
public sealed record ClamdEndpoint
{
    private ClamdEndpoint(string? host, int port, string? socketPath) => (Host, Port, SocketPath) = (host, port, socketPath);

    public string? Host { get; }
    public int Port { get; }
    public string? SocketPath { get; }

    public static ClamdEndpoint Tcp(string host, int port) => new(host, port, null);

    public static ClamdEndpoint Unix(string path) => new(null, 0, path);

    /// <summary>Parses tcp://HOST:PORT, HOST:PORT, [IPv6]:PORT, unix:PATH, unix://PATH or an absolute path.</summary>
    public static bool TryParse(string? text, [NotNullWhen(true)] out ClamdEndpoint? endpoint)
    {
        endpoint = null;
        var value = text?.Trim() ?? "";
        if (value.StartsWith("unix:", StringComparison.OrdinalIgnoreCase))
        {
            var path = value[5..];
            if (path.StartsWith("//", StringComparison.Ordinal))
                path = path[2..];
            if (!path.StartsWith('/'))
                return false;
            endpoint = Unix(path);
            return true;
        }
        if (value.StartsWith('/'))
        {
            endpoint = Unix(value);
            return true;
        }
        if (value.StartsWith("tcp://", StringComparison.OrdinalIgnoreCase))
            value = value[6..].TrimEnd('/');
        var colon = value.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(value[(colon + 1)..], out var port) || port is < 1 or > 65535)
            return false;
        var host = value[..colon].Trim('[', ']');
        if (host.Length == 0 || host.Contains('/'))
            return false;
        endpoint = Tcp(host, port);
        return true;
    }

    internal EndPoint ToEndPoint() => SocketPath is not null
        ? new UnixDomainSocketEndPoint(SocketPath)
        : IPAddress.TryParse(Host, out var address) ? new IPEndPoint(address, Port) : new DnsEndPoint(Host!, Port);

    public override string ToString() => SocketPath is not null ? $"unix:{SocketPath}"
        : Host!.Contains(':') ? $"tcp://[{Host}]:{Port}" : $"tcp://{Host}:{Port}";
}

public enum ClamdStatus
{
    Clean,
    Infected,

    /// <summary>clamd answered, but with an error (size limit exceeded, unreadable stream…): not scanned.</summary>
    Error,
}

/// <summary>clamd's verdict on one stream.</summary>
/// <param name="Status">Clean, infected, or an error reply.</param>
/// <param name="Signature">The signature name when infected (e.g. "Win.Test.EICAR_HDB-1").</param>
/// <param name="Reply">clamd's reply as sent, without the terminating NUL.</param>
public sealed record ClamdResult(ClamdStatus Status, string? Signature, string Reply)
{
    /// <summary>Reads an INSTREAM reply: "stream: OK", "stream: NAME FOUND", or "… ERROR".</summary>
    public static ClamdResult Parse(string reply)
    {
        var text = reply.Trim('\0', ' ', '\r', '\n');
        var body = text.StartsWith("stream:", StringComparison.Ordinal) ? text[7..].Trim() : text;
        if (body == "OK")
            return new(ClamdStatus.Clean, null, text);
        if (body.EndsWith(" FOUND", StringComparison.Ordinal))
            return new(ClamdStatus.Infected, body[..^6].Trim(), text);
        return new(ClamdStatus.Error, null, text);
    }
}

/// <summary>clamd could not be asked: not reachable, timed out, hung up, or the message is over the stream limit.</summary>
public sealed class ClamdException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A client for clamd's INSTREAM command over TCP or a unix socket: the message is sent in
/// length-prefixed chunks on a fresh connection, so clamd never needs to read Postern's files.
/// Every step has a deadline (connect, then the whole exchange), a stream longer than clamd's
/// StreamMaxLength is refused before sending rather than cut off, and clamd hanging up mid-stream
/// (what it does when its own limit is hit) still yields its reply when it sent one.
/// </summary>
public sealed class ClamdClient
{
    private const int MaxReplyLength = 4096;
    private readonly ClamAvOptions options;

    public ClamdClient(ClamAvOptions options)
    {
        this.options = options;
        Endpoint = ClamdEndpoint.TryParse(options.Endpoint, out var endpoint)
            ? endpoint
            : throw new ArgumentException($"Postern:Scanning:ClamAv:Endpoint '{options.Endpoint}' is not tcp://HOST:PORT, HOST:PORT, unix:PATH or an absolute socket path", nameof(options));
    }

    public ClamdEndpoint Endpoint { get; }

    /// <summary>Sends PING and returns the reply ("PONG"); throws <see cref="ClamdException"/> when clamd does not answer in time.</summary>
    public async Task<string> PingAsync(CancellationToken cancellationToken = default) =>
        await CommandAsync("PING", options.ConnectTimeout + options.ConnectTimeout, cancellationToken);

    /// <summary>Sends VERSION ("ClamAV 1.4.6/27500/…").</summary>
    public async Task<string> VersionAsync(CancellationToken cancellationToken = default) =>
        await CommandAsync("VERSION", options.ConnectTimeout + options.ConnectTimeout, cancellationToken);

    /// <summary>
    /// Scans <paramref name="content"/> (from its current position to its end) with INSTREAM.
    /// Returns clamd's verdict, including error replies; throws <see cref="ClamdException"/> when no
    /// verdict could be had, and <see cref="OperationCanceledException"/> only for <paramref name="cancellationToken"/>.
    /// </summary>
    public async Task<ClamdResult> ScanAsync(Stream content, CancellationToken cancellationToken = default)
    {
        if (content.CanSeek && content.Length - content.Position > options.MaxStreamLength)
            throw new ClamdException($"message is {content.Length - content.Position:N0} bytes, more than the {options.MaxStreamLength:N0}-byte stream limit (MaxStreamLength)");

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.ScanTimeout);
        try
        {
            using var socket = await ConnectAsync(cancellationToken);
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            try
            {
                await SendStreamAsync(stream, content, deadline.Token);
            }
            catch (Exception e) when (e is IOException or SocketException)
            {
                // clamd closes the connection when it refuses the stream (e.g. its StreamMaxLength); its reason may be waiting.
                var early = await TryReadReplyAsync(stream, deadline.Token);
                if (early is not null)
                    return ClamdResult.Parse(early);
                throw new ClamdException($"clamd at {Endpoint} closed the connection while the message was being sent ({e.Message})", e);
            }
            var reply = await ReadReplyAsync(stream, deadline.Token)
                ?? throw new ClamdException($"clamd at {Endpoint} closed the connection without a reply");
            return ClamdResult.Parse(reply);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ClamdException($"clamd at {Endpoint} did not answer within {options.ScanTimeout.TotalSeconds:0.#} s");
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            throw new ClamdException($"clamd at {Endpoint} failed during the scan: {e.Message}", e);
        }
    }

    private async Task SendStreamAsync(NetworkStream stream, Stream content, CancellationToken cancellationToken)
    {
        await stream.WriteAsync("zINSTREAM\0"u8.ToArray(), cancellationToken);
        var buffer = ArrayPool<byte>.Shared.Rent(options.ChunkSize + 4);
        try
        {
            long sent = 0;
            while (true)
            {
                var read = await ReadChunkAsync(content, buffer.AsMemory(4, options.ChunkSize), cancellationToken);
                if (read == 0)
                    break;
                sent += read;
                if (sent > options.MaxStreamLength)
                    throw new ClamdException($"message is more than the {options.MaxStreamLength:N0}-byte stream limit (MaxStreamLength)");
                BinaryPrimitives.WriteUInt32BigEndian(buffer, (uint)read);
                await stream.WriteAsync(buffer.AsMemory(0, read + 4), cancellationToken);
            }
            BinaryPrimitives.WriteUInt32BigEndian(buffer, 0);
            await stream.WriteAsync(buffer.AsMemory(0, 4), cancellationToken);
            await stream.FlushAsync(cancellationToken);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static async Task<int> ReadChunkAsync(Stream content, Memory<byte> chunk, CancellationToken cancellationToken)
    {
        var total = 0;
        while (total < chunk.Length)
        {
            var read = await content.ReadAsync(chunk[total..], cancellationToken);
            if (read == 0)
                break;
            total += read;
        }
        return total;
    }

    private async Task<string> CommandAsync(string command, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            using var socket = await ConnectAsync(cancellationToken);
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"z{command}\0"), deadline.Token);
            return await ReadReplyAsync(stream, deadline.Token)
                ?? throw new ClamdException($"clamd at {Endpoint} closed the connection without answering {command}");
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ClamdException($"clamd at {Endpoint} did not answer {command} within {timeout.TotalSeconds:0.#} s");
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            throw new ClamdException($"clamd at {Endpoint} failed to answer {command}: {e.Message}", e);
        }
    }

    private async Task<Socket> ConnectAsync(CancellationToken cancellationToken)
    {
        var endPoint = Endpoint.ToEndPoint();
        var socket = endPoint is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : endPoint is IPEndPoint ip ? new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
            : new Socket(SocketType.Stream, ProtocolType.Tcp);
        using var connectDeadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        connectDeadline.CancelAfter(options.ConnectTimeout);
        try
        {
            if (socket.AddressFamily != AddressFamily.Unix)
                socket.NoDelay = true;
            await socket.ConnectAsync(endPoint, connectDeadline.Token);
            return socket;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new ClamdException($"could not connect to clamd at {Endpoint} within {options.ConnectTimeout.TotalSeconds:0.#} s");
        }
        catch (SocketException e)
        {
            socket.Dispose();
            throw new ClamdException($"could not connect to clamd at {Endpoint}: {e.Message}", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Reads up to the terminating NUL (or the end of the connection); null when nothing came.</summary>
    private static async Task<string?> ReadReplyAsync(NetworkStream stream, CancellationToken cancellationToken)
    {
        var reply = new List<byte>();
        var buffer = new byte[512];
        while (reply.Count < MaxReplyLength)
        {
            var read = await stream.ReadAsync(buffer, cancellationToken);
            if (read == 0)
                break;
            var nul = Array.IndexOf(buffer, (byte)0, 0, read);
            reply.AddRange(buffer.AsSpan(0, nul < 0 ? read : nul));
            if (nul >= 0)
                break;
        }
        return reply.Count == 0 ? null : Encoding.UTF8.GetString(reply.ToArray());
    }

    private static async Task<string?> TryReadReplyAsync(NetworkStream stream, CancellationToken cancellationToken)
    {
        try
        {
            return await ReadReplyAsync(stream, cancellationToken);
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            return null;
        }
    }
}
