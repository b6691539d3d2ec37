using Postern.Smtp;

namespace Postern.ExoEmulator.MailFlow;

/// <summary>What the front door decided for one transaction, recipient by recipient.</summary>
internal sealed class FrontDoorTransaction(IReadOnlyList<TenantMailView> tenants)
{
    public IReadOnlyList<TenantMailView> Tenants { get; } = tenants;

    public bool Decided { get; set; }

    /// <summary>The transaction came in on this tenant's OnPremises connector (decided at the first recipient).</summary>
    public OnPremisesAttribution? OnPremises { get; set; }

    /// <summary>Internet mail: the tenant each recipient belongs to.</summary>
    public Dictionary<string, TenantMailView> Owners { get; } = new(StringComparer.OrdinalIgnoreCase);
}

/// <summary>
/// The SMTP side of Exchange Online's front door: the checks it makes at RCPT (attribution, relay, the Partner
/// connectors' restrictions and TLS), then the message to <see cref="ExoTransport"/>.
/// </summary>
internal sealed class FrontDoorHandler(ExoTransport transport, MailFlowLog log) : ISmtpTransactionHandler
{
    private readonly HashSet<string> _recordedSessions = [];

    public ValueTask<SmtpReply> MailFromAsync(SmtpSessionInfo session, SmtpTransaction transaction, CancellationToken cancellationToken)
    {
        lock (_recordedSessions)
        {
            if (_recordedSessions.Add(session.SessionId))
            {
                var certificate = session.ClientCertificate;
                log.Add(new ConnectionRecord(DateTimeOffset.UtcNow, session.SessionId, session.RemoteEndPoint.Address, session.IsTls,
                    certificate?.Subject, certificate is null ? [] : ConnectorDelivery.Names(certificate), certificate?.Thumbprint));
            }
        }
        transaction.State = new FrontDoorTransaction(transport.TenantViews());
        return ValueTask.FromResult(new SmtpReply(250, "2.1.0", "Sender OK"));
    }

    public ValueTask<SmtpReply> RecipientAsync(SmtpSessionInfo session, SmtpTransaction transaction, SmtpAddress recipient, CancellationToken cancellationToken)
    {
        var state = (FrontDoorTransaction)transaction.State!;
        var names = session.ClientCertificate is { } certificate ? ConnectorDelivery.Names(certificate) : [];
        var client = session.RemoteEndPoint.Address;
        var fromDomain = transaction.From.Domain.ToLowerInvariant();
        var domain = recipient.Domain.ToLowerInvariant();
        if (!state.Decided)
        {
            state.OnPremises = Attribution.OnPremises(state.Tenants, names, client, fromDomain, domain);
            state.Decided = true;
        }
        if (state.OnPremises is { } onPremises)
        {
            if (onPremises.Tenant.Accepts(domain))
                return Ok();
            // Relay to the Internet (Learn, "updated requirements for SMTP relay", since 1 November 2023): an accepted
            // domain of the tenant in the certificate or in MAIL FROM.
            if (onPremises.Tenant.Accepts(fromDomain) || names.Any(onPremises.Tenant.AcceptsWithin))
                return Ok();
            return Refuse(session, transaction, recipient, "550 5.7.64 TenantAttribution; Relay Access Denied");
        }
        var owner = state.Tenants.FirstOrDefault(t => t.Accepts(domain));
        if (owner is null)
            return Refuse(session, transaction, recipient, "550 5.7.64 TenantAttribution; Relay Access Denied");
        if (Attribution.PartnerRefusal(owner, fromDomain, client, names, session.IsTls) is { } refusal)
            return Refuse(session, transaction, recipient, refusal, owner.Name);
        state.Owners[recipient.Address] = owner;
        return Ok();
    }

    public IMessageWriter BeginMessage(SmtpSessionInfo session, SmtpTransaction transaction) => new Writer(transport, session, transaction);

    private static ValueTask<SmtpReply> Ok() => ValueTask.FromResult(new SmtpReply(250, "2.1.5", "Recipient OK"));

    private ValueTask<SmtpReply> Refuse(SmtpSessionInfo session, SmtpTransaction transaction, SmtpAddress recipient, string reply, string? tenant = null)
    {
        log.Add(session.SessionId, tenant, "refused", $"<{transaction.From.Address}> → <{recipient.Address}> from {session.RemoteEndPoint.Address}: {reply}");
        var parts = reply.Split(' ', 3);
        return ValueTask.FromResult(new SmtpReply(int.Parse(parts[0], System.Globalization.CultureInfo.InvariantCulture), parts[1], parts[2]));
    }

    private sealed class Writer(ExoTransport transport, SmtpSessionInfo session, SmtpTransaction transaction) : IMessageWriter
    {
        private readonly MemoryStream _content = new();

        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            _content.Write(data.Span);
            return ValueTask.CompletedTask;
        }

        public ValueTask<SmtpReply> CompleteAsync(CancellationToken cancellationToken)
        {
            var id = transport.AcceptFromFrontDoor(session, transaction, (FrontDoorTransaction)transaction.State!, _content.ToArray());
            return ValueTask.FromResult(new SmtpReply(250, "2.6.0", $"<{id}@emulator.mail.protection.outlook.com> [InternalId={id}] Queued mail for delivery"));
        }

        public ValueTask DisposeAsync() => _content.DisposeAsync();
    }
}

/// <summary>"Every other MX on the Internet": takes any mail and puts it in the Internet Maildir.</summary>
internal sealed class InternetHandler(Maildir maildir, MailFlowLog log) : ISmtpTransactionHandler
{
    public ValueTask<SmtpReply> MailFromAsync(SmtpSessionInfo session, SmtpTransaction transaction, CancellationToken cancellationToken) =>
        ValueTask.FromResult(SmtpReply.Ok("2.1.0 Ok"));

    public ValueTask<SmtpReply> RecipientAsync(SmtpSessionInfo session, SmtpTransaction transaction, SmtpAddress recipient, CancellationToken cancellationToken) =>
        ValueTask.FromResult(new SmtpReply(250, "2.1.5", "Ok"));

    public IMessageWriter BeginMessage(SmtpSessionInfo session, SmtpTransaction transaction) => new Writer(maildir, log, session, transaction);

    private sealed class Writer(Maildir maildir, MailFlowLog log, SmtpSessionInfo session, SmtpTransaction transaction) : IMessageWriter
    {
        private readonly MemoryStream _content = new();

        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            _content.Write(data.Span);
            return ValueTask.CompletedTask;
        }

        public ValueTask<SmtpReply> CompleteAsync(CancellationToken cancellationToken)
        {
            var mail = RawMail.Parse(_content.ToArray());
            mail.Prepend("X-Envelope-To", string.Join(", ", transaction.Recipients.Select(r => r.Address)));
            mail.Prepend("Return-Path", $"<{transaction.From.Address}>");
            maildir.Deliver(Maildir.Internet, mail.ToBytes());
            var id = mail.First("Message-ID") ?? session.SessionId;
            log.Add(id, null, "internet", $"an Internet MX took <{transaction.From.Address}> → {string.Join(", ", transaction.Recipients)} from {session.RemoteEndPoint.Address}");
            return ValueTask.FromResult(new SmtpReply(250, "2.0.0", "Ok: queued"));
        }

        public ValueTask DisposeAsync() => _content.DisposeAsync();
    }
}
