using Postern.Smtp;

namespace Postern.Core.Relay;

// While the content arrives: the relay key, checked as soon as the header section is in; refusals of the SMTP server itself.
internal sealed partial class RelayMessageWriter
{
    /// <summary>
    /// The header section is complete: run <see cref="AuthenticateStage"/> and take the tenant's <see cref="TenantLimits"/>
    /// lease now rather than at the end of DATA. A message without a valid key for these recipients (or one that loops,
    /// or goes where its tenant may not send, or whose tenant is at its limit of transactions or spool bytes, counting
    /// the SIZE= it declared) is refused and recorded at once, and the server reads and discards the rest, so neither a
    /// client with no key nor a tenant over its limits can make Postern hold or spill a large message.
    /// <see cref="CompleteAsync"/> reuses the section and the tenant found here.
    /// </summary>
    public ValueTask<SmtpReply?> HeaderSectionCompleteAsync(CancellationToken cancellationToken)
    {
        var headers = ReadHeaderSection(whileReceiving: true);
        // The server saw the empty line; a section larger than the relay's own limit is left to CompleteAsync.
        if (!headers.Ended)
            return ValueTask.FromResult<SmtpReply?>(null);
        _headers = headers;
        return Admit(headers, relay.Routing.Current, transaction.DeclaredSize ?? content.Length) is { } refusal
            ? ValueTask.FromResult<SmtpReply?>(Refuse(headers, refusal))
            : ValueTask.FromResult<SmtpReply?>(null);
    }

    /// <summary>The SMTP server refused the content itself (bare line ends, line length, size): recorded in the trace like any refusal.</summary>
    public ValueTask ContentRefusedAsync(SmtpReply reply, CancellationToken cancellationToken)
    {
        var headers = _headers ?? ReadHeaderSection(whileReceiving: true);
        Refuse(headers, new Refusal(reply, "refused by the SMTP server: " + reply.Text, _authenticated?.Tenant));
        return ValueTask.CompletedTask;
    }
}
