using System.Collections.Concurrent;

namespace Postern.Smtp.Tests.Infrastructure;

/// <summary>A message as the handler saw it.</summary>
internal sealed class ReceivedMessage
{
    private readonly MemoryStream _content = new();
    private readonly Lock _lock = new();

    public required SmtpSessionInfo Session { get; init; }

    public required SmtpTransaction Transaction { get; init; }

    public bool Completed { get; set; }

    public bool Disposed { get; set; }

    public int Writes { get; set; }

    /// <summary>How much content had been written when the server said the header section was complete; null if it never did.</summary>
    public int? HeaderSectionSeenAt { get; set; }

    /// <summary>The reply the server told the writer it refused the content with; null if it never did.</summary>
    public string? RefusedWith { get; set; }

    public byte[] Content
    {
        get
        {
            lock (_lock)
            {
                return _content.ToArray();
            }
        }
    }

    public string Text => System.Text.Encoding.UTF8.GetString(Content);

    public void Append(ReadOnlySpan<byte> data)
    {
        lock (_lock)
        {
            _content.Write(data);
            Writes++;
        }
    }
}

/// <summary>An in-test handler that records everything and can be told to refuse or to fail.</summary>
internal sealed class RecordingHandler : ISmtpTransactionHandler
{
    public ConcurrentQueue<SmtpTransaction> Mails { get; } = new();

    public ConcurrentQueue<SmtpAddress> Recipients { get; } = new();

    public ConcurrentQueue<ReceivedMessage> Messages { get; } = new();

    public ConcurrentQueue<SmtpSessionInfo> Sessions { get; } = new();

    /// <summary>Decides MAIL; null accepts.</summary>
    public Func<SmtpTransaction, SmtpReply?>? OnMail { get; set; }

    /// <summary>Decides RCPT; null accepts.</summary>
    public Func<SmtpAddress, SmtpReply?>? OnRecipient { get; set; }

    /// <summary>Decides the final reply; null gives 250.</summary>
    public Func<ReceivedMessage, SmtpReply?>? OnComplete { get; set; }

    /// <summary>Decides at the end of the header section (the content so far is passed); null lets the message continue.</summary>
    public Func<ReceivedMessage, SmtpReply?>? OnHeaderSectionComplete { get; set; }

    /// <summary>Thrown from WriteAsync when set.</summary>
    public Func<Exception>? FailWrite { get; set; }

    /// <summary>Awaited before MAIL is decided (to make a session slow).</summary>
    public Func<SmtpTransaction, CancellationToken, Task>? BeforeMail { get; set; }

    public async ValueTask<SmtpReply> MailFromAsync(SmtpSessionInfo session, SmtpTransaction transaction, CancellationToken cancellationToken)
    {
        Sessions.Enqueue(session);
        if (BeforeMail is { } before)
        {
            await before(transaction, cancellationToken);
        }
        var reply = OnMail?.Invoke(transaction) ?? new SmtpReply(250, "2.1.0", "Sender ok");
        if (reply.IsPositive)
        {
            Mails.Enqueue(transaction);
        }
        return reply;
    }

    public ValueTask<SmtpReply> RecipientAsync(SmtpSessionInfo session, SmtpTransaction transaction, SmtpAddress recipient, CancellationToken cancellationToken)
    {
        var reply = OnRecipient?.Invoke(recipient) ?? new SmtpReply(250, "2.1.5", "Recipient ok");
        if (reply.IsPositive)
        {
            Recipients.Enqueue(recipient);
        }
        return ValueTask.FromResult(reply);
    }

    public IMessageWriter BeginMessage(SmtpSessionInfo session, SmtpTransaction transaction)
    {
        var message = new ReceivedMessage { Session = session, Transaction = transaction };
        Messages.Enqueue(message);
        return new Writer(this, message);
    }

    private sealed class Writer(RecordingHandler owner, ReceivedMessage message) : IMessageWriter
    {
        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            if (owner.FailWrite is { } fail)
            {
                throw fail();
            }
            if (message.Completed || message.Disposed)
            {
                throw new InvalidOperationException("Write after the writer ended.");
            }
            message.Append(data.Span);
            return ValueTask.CompletedTask;
        }

        public ValueTask ContentRefusedAsync(SmtpReply reply, CancellationToken cancellationToken)
        {
            if (message.RefusedWith is not null || message.Completed || message.Disposed)
            {
                throw new InvalidOperationException("Told of a refusal twice, or after the writer ended.");
            }
            message.RefusedWith = reply.ToString();
            return ValueTask.CompletedTask;
        }

        public ValueTask<SmtpReply?> HeaderSectionCompleteAsync(CancellationToken cancellationToken)
        {
            if (message.HeaderSectionSeenAt is not null)
            {
                throw new InvalidOperationException("Header section reported complete twice.");
            }
            message.HeaderSectionSeenAt = message.Content.Length;
            return ValueTask.FromResult(owner.OnHeaderSectionComplete?.Invoke(message));
        }

        public ValueTask<SmtpReply> CompleteAsync(CancellationToken cancellationToken)
        {
            if (message.Completed || message.Disposed)
            {
                throw new InvalidOperationException("Complete after the writer ended.");
            }
            message.Completed = true;
            return ValueTask.FromResult(owner.OnComplete?.Invoke(message) ?? new SmtpReply(250, "2.0.0", "Queued as test"));
        }

        public ValueTask DisposeAsync()
        {
            message.Disposed = true;
            return ValueTask.CompletedTask;
        }
    }
}
