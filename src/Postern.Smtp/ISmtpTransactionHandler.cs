namespace Postern.Smtp;

/// <summary>
/// What the server asks of the application. The server owns the protocol (syntax, order of
/// commands, limits, TLS); the handler decides who may send what to whom, and where the message goes.
/// Calls for one session never overlap.
/// </summary>
public interface ISmtpTransactionHandler
{
    /// <summary>MAIL FROM was well formed; accept (250) or refuse it.</summary>
    ValueTask<SmtpReply> MailFromAsync(SmtpSessionInfo session, SmtpTransaction transaction, CancellationToken cancellationToken);

    /// <summary>A well-formed RCPT TO. A positive reply adds the recipient to the transaction.</summary>
    ValueTask<SmtpReply> RecipientAsync(SmtpSessionInfo session, SmtpTransaction transaction, SmtpAddress recipient, CancellationToken cancellationToken);

    /// <summary>DATA or the first BDAT began: where the message content goes.</summary>
    IMessageWriter BeginMessage(SmtpSessionInfo session, SmtpTransaction transaction);
}

/// <summary>
/// Receives the content of one message, dot-unstuffed, exactly as the client sent it (CRLF line ends).
/// Either <see cref="CompleteAsync"/> or <c>DisposeAsync</c> alone (abort) ends it.
/// </summary>
public interface IMessageWriter : IAsyncDisposable
{
    /// <summary>Append content. Called many times; the data is only valid during the call.</summary>
    ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>
    /// The content written so far holds the whole header section, up to the empty line that ends it (and perhaps the
    /// start of the body). Called at most once, never for a message whose header section does not end. A reply
    /// refuses the message now: the server disposes the writer, reads and discards the rest of the content, and
    /// answers that reply at its end, so a message the handler already knows it will refuse is not stored. Null
    /// lets it continue.
    /// </summary>
    ValueTask<SmtpReply?> HeaderSectionCompleteAsync(CancellationToken cancellationToken) => ValueTask.FromResult<SmtpReply?>(null);

    /// <summary>
    /// The server itself refused the content (bare CR or LF, a line too long, the message or its header section too
    /// large) with <paramref name="reply"/>; called once, just before <c>DisposeAsync</c>, so the handler can record
    /// why a message it never completes was refused. Not called for the writer's own refusals or failures.
    /// </summary>
    ValueTask ContentRefusedAsync(SmtpReply reply, CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>All content received. The reply is the one sent for DATA / BDAT LAST; a 250 must mean the message is safe.</summary>
    ValueTask<SmtpReply> CompleteAsync(CancellationToken cancellationToken);
}
