using System.ComponentModel;
using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace Postern.Smtp.Internal;

// STARTTLS (RFC 3207).
internal sealed partial class SmtpSession
{
    private async ValueTask<string?> StartTlsAsync(SmtpCommand command)
    {
        if (command.Error is not null)
        {
            return Error(command.Error);
        }
        if (_listener.TlsOptions is null)
        {
            return Error(SmtpReplies.StartTlsUnavailable);
        }
        if (Info.IsTls)
        {
            return Error(SmtpReplies.TlsAlreadyActive);
        }
        if (_transaction is not null || _bdatFailure is not null)
        {
            return Error(SmtpReplies.StartTlsInTransaction);
        }
        Write(SmtpReplies.ReadyToStartTls);
        await FlushAsync(IdleTimeoutMs()).ConfigureAwait(false);

        // CVE-2011-0411: anything the client sent behind STARTTLS arrived in clear text and must not be
        // executed as if it came over TLS. Throw it away.
        if (!_buffer.IsEmpty)
        {
            Log.DiscardedAfterStartTls(_logger, Info.SessionId, Info.RemoteEndPoint, _buffer.Length);
        }
        if (_hasBuffer)
        {
            _reader.AdvanceTo(_buffer.End);
            _hasBuffer = false;
        }
        _buffer = default;
        _discardingLongLine = false;
        await _reader.CompleteAsync().ConfigureAwait(false);
        await _writer.CompleteAsync().ConfigureAwait(false);

        var ssl = new SslStream(_networkStream, leaveInnerStreamOpen: true);
        _sslStream = ssl;
        _transportBroken = true; // until the handshake succeeds there is nothing to write replies to
        ArmTimeout(IdleTimeoutMs());
        try
        {
            await ssl.AuthenticateAsServerAsync(_listener.TlsOptions, _ioCts.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException or Win32Exception || (ex is OperationCanceledException && _ioCts.IsCancellationRequested))
        {
            Log.TlsHandshakeFailed(_logger, Info.SessionId, Info.RemoteEndPoint, ex.Message);
            SmtpMetrics.TlsHandshakeFailed(Info.Listener.Name);
            return "TLS handshake failed";
        }
        DisarmTimeout();
        _transportBroken = false;

        Info.TlsProtocol = ssl.SslProtocol;
        Info.TlsCipher = ssl.NegotiatedCipherSuite.ToString();
        Info.ClientCertificate = ssl.RemoteCertificate as X509Certificate2;
        Log.TlsEstablished(_logger, Info.SessionId, ssl.SslProtocol.ToString(), Info.TlsCipher, Info.ClientCertificate?.Subject ?? "none");

        _reader = PipeReader.Create(ssl, ReaderOptions);
        _writer = PipeWriter.Create(ssl, WriterOptions);
        _inputCompleted = false;
        // RFC 3207 §4.2: forget everything learned before TLS.
        Info.HeloName = null;
        Info.IsExtended = false;
        await ResetTransactionAsync().ConfigureAwait(false);
        return null;
    }
}
