using Microsoft.Extensions.Logging;

namespace Postern.Smtp.Internal;

/// <summary>What sessions share with the server that runs them.</summary>
internal sealed class SessionHost(SmtpLimits limits, ISmtpTransactionHandler handler, ILogger logger)
{
    private volatile bool _stopping;

    public SmtpLimits Limits { get; } = limits;

    public ISmtpTransactionHandler Handler { get; } = handler;

    public ILogger Logger { get; } = logger;

    /// <summary>Once set, sessions answer their next command with 421 4.3.2 and close.</summary>
    public bool IsStopping => _stopping;

    public void SignalStopping() => _stopping = true;
}
