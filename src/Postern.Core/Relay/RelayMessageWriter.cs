using System.Buffers;
using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Postern.Core.Policy;
using Postern.Core.Scanning;
using Postern.Core.Spool;
using Postern.Core.Tenants;
using Postern.Core.Trace;
using Postern.Smtp;

namespace Postern.Core.Relay;

/// <summary>
/// Collects one message's content and, at the end of DATA, decides its fate: authenticate the
/// tenant by X-Postern-Key (then remove it), refuse loops, scan, make it durable, answer.
/// </summary>
internal sealed partial class RelayMessageWriter(RelayTransactionHandler relay, SmtpSessionInfo session, SmtpTransaction transaction, MessageContent content)
    : IMessageWriter
{
    /// <summary>Header sections larger than this are refused; real ones are a few KB.</summary>
    private const int MaxHeaderSection = 1024 * 1024;

    public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken) =>
        content.WriteAsync(data, cancellationToken);

    public async ValueTask<SmtpReply> CompleteAsync(CancellationToken cancellationToken)
    {
        var options = relay.Options;
        if (transaction.HasBareLineEndings)
        {
            // A lone CR or LF is read as a line end by some servers and not by others: the basis of SMTP smuggling.
            return Refuse(null, new SmtpReply(550, "5.6.0", "Message refused: bare CR or LF line endings (only CRLF is allowed)"), "bare CR or LF in the message");
        }
        var prefixLength = (int)Math.Min(content.Length, MaxHeaderSection);
        var prefix = ArrayPool<byte>.Shared.Rent(Math.Max(prefixLength, 1));
        try
        {
            content.CopyPrefix(prefix.AsSpan(0, prefixLength));
            var headers = HeaderSection.Parse(prefix.AsSpan(0, prefixLength), complete: content.Length <= MaxHeaderSection);
            if (headers is null)
                return Refuse(null, new SmtpReply(554, "5.6.0", "Header section too large"), "header section over 1 MB");

            var hops = headers.Count("Received");
            if (hops > options.MaxReceivedHeaders)
                return Refuse(headers, new SmtpReply(554, "5.4.6", $"Mail loop detected: {hops} Received headers (limit {options.MaxReceivedHeaders})"), $"loop: {hops} hops");

            var table = relay.Routing.Current;
            var keyHeader = options.HeaderPrefix + "Key";
            var tenant = AuthenticateKey(headers, table, out var keyRefusal);
            if (tenant is null)
                return keyRefusal!;

            var loopHeader = options.HeaderPrefix + "Loop";
            if (headers.Values(loopHeader).Any(token => token == tenant.LoopToken || (tenant.PreviousLoopToken is { } previous && token == previous)))
                return Refuse(headers, new SmtpReply(554, "5.4.6", "Mail loop detected: this message already passed through Postern for this tenant"), "loop: tenant loop token present", tenant);

            var recipients = Route(table, tenant, out var routeError);
            if (recipients is null)
                return Refuse(headers, routeError!, "recipient not allowed for tenant", tenant);

            var envelope = new Envelope
            {
                QueueId = QueueId.New(),
                ReceivedAt = DateTimeOffset.UtcNow,
                TenantId = tenant.Id,
                MailFrom = transaction.From.Address,
                Recipients = recipients,
                Client = session.RemoteEndPoint.Address.ToString(),
                HeloName = session.HeloName,
                Subject = DecodeSubject(headers),
                MessageId = headers.Values("Message-ID").FirstOrDefault(),
                SmtpUtf8 = transaction.SmtpUtf8,
            };

            var scan = await relay.Scanner.ScanAsync(new ScanRequest(envelope, tenant, content, table), cancellationToken).ConfigureAwait(false);
            var worst = scan.MostSevere;
            if (worst.Action == VerdictAction.Defer)
                return Refuse(headers, worst.Reply ?? new SmtpReply(451, "4.7.1", "Please try again later"), $"deferred by rule '{worst.Rule}': {worst.Reason}", tenant, scan);
            if (scan.Verdicts.All(v => v.Action == VerdictAction.Reject))
                return Refuse(headers, worst.Reply ?? new SmtpReply(550, "5.7.1", "Message refused by policy"), $"rejected by rule '{worst.Rule}': {worst.Reason}", tenant, scan);

            var section = prefix.AsMemory(0, headers.Length);
            var parts = Split(envelope, scan);
            if (session.Listener.Handoff && parts.Count == 1 && parts[0].Verdict.Action is VerdictAction.Deliver or VerdictAction.Tag)
                return await HandOffAsync(parts[0].Envelope, BuildHead(parts[0].Envelope, headers, section.Span, keyHeader, parts[0].Verdict, scan.Headers), headers.Length, scan, cancellationToken).ConfigureAwait(false);

            foreach (var (part, verdict) in parts)
            {
                var head = BuildHead(part, headers, section.Span, keyHeader, verdict, scan.Headers);
                try
                {
                    if (verdict.Action == VerdictAction.Reject)
                    {
                        relay.Trace.Write(new MessageReceived(part, content.Length, MessageStates.Refused, $"rejected by rule '{verdict.Rule}': {verdict.Reason}", Describe(verdict), scan.Findings));
                        // The client hears 250 for the other recipients, so the sender learns of these by a DSN.
                        var reply = $"550 5.7.1 Rejected by policy rule '{verdict.Rule}': {verdict.Reason}";
                        var failed = part.Recipients.Select(r => new Delivery.RecipientResult(r.Address, Delivery.RecipientOutcome.Failed, reply)).ToArray();
                        await relay.Scheduler.BounceAsync(part, () => OpenCopy(head, headers.Length), failed, cancellationToken).ConfigureAwait(false);
                        continue;
                    }
                    if (verdict.Action == VerdictAction.Quarantine)
                    {
                        var held = relay.Quarantine.Hold(part, head, content, headers.Length, verdict.Rule, verdict.Reason);
                        relay.Trace.Write(new MessageReceived(part, held.Size, MessageStates.Quarantined, $"quarantined by rule '{verdict.Rule}': {verdict.Reason}", Describe(verdict), scan.Findings));
                        relay.Logger.LogInformation("{QueueId}: quarantined for tenant {Tenant} by rule {Rule}", part.QueueId, tenant.Name, verdict.Rule);
                        continue;
                    }
                    var stored = await relay.Spool.AppendAsync(part, head, content, headers.Length, cancellationToken).ConfigureAwait(false);
                    relay.Trace.Write(new MessageReceived(part, stored.BodyLength, MessageStates.Queued, verdict.Action == VerdictAction.Tag ? $"tagged by rule '{verdict.Rule}': {verdict.Reason}" : "accepted", Describe(verdict), scan.Findings));
                    relay.Scheduler.Enqueue(stored);
                    RelayLog.Accepted(relay.Logger, part.QueueId, part.Client, tenant.Name, part.Direction, part.Recipients.Count, stored.BodyLength, Describe(verdict));
                }
                catch (IOException ex)
                {
                    relay.Logger.LogError(ex, "{Session}: could not store a message", session.SessionId);
                    return new SmtpReply(451, "4.3.0", "Could not store the message; please try again later");
                }
            }
            return new SmtpReply(250, "2.0.0", $"Ok: queued as {envelope.QueueId}");
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(prefix);
            content.Dispose();
        }
    }

    public ValueTask DisposeAsync()
    {
        content.Dispose();
        return ValueTask.CompletedTask;
    }

    /// <summary>The tenant whose current (or still valid previous) key matches, among the tenants this envelope involves.</summary>
    private Tenant? Authenticate(RoutingTable table, byte[] keyHash)
    {
        var candidates = new List<Tenant>();
        if (RecipientPolicy.SenderTenant(table, transaction.From) is { } sender)
            candidates.Add(sender);
        foreach (var recipient in transaction.Recipients)
            if (DomainName.Normalize(recipient.Domain) is { } domain && table.OwnerOf(domain) is { } owner && !candidates.Contains(owner))
                candidates.Add(owner);
        var now = DateTimeOffset.UtcNow;
        Tenant? match = null;
        foreach (var tenant in candidates)
        {
            // Compare against every candidate so timing does not tell which tenant matched.
            var current = RelayKey.Matches(keyHash, tenant.RelayKeyHash);
            var previous = tenant.PreviousRelayKeyExpires > now && RelayKey.Matches(keyHash, tenant.PreviousRelayKeyHash);
            if ((current | previous) && match is null)
                match = tenant;
        }
        return match;
    }

    /// <summary>Where each recipient goes for this tenant; null (with the refusal) when one is not the tenant's to send.</summary>
    private List<EnvelopeRecipient>? Route(RoutingTable table, Tenant tenant, out SmtpReply? error)
    {
        error = null;
        var senderIsTenant = RecipientPolicy.SenderTenant(table, transaction.From)?.Id == tenant.Id;
        var result = new List<EnvelopeRecipient>(transaction.Recipients.Count);
        foreach (var recipient in transaction.Recipients)
        {
            var domain = DomainName.Normalize(recipient.Domain);
            if (domain is not null && table.OwnerOf(domain)?.Id == tenant.Id)
            {
                result.Add(new EnvelopeRecipient(recipient.LocalPart + "@" + domain, RecipientRoute.Tenant));
                continue;
            }
            if (domain is null || !senderIsTenant || tenant.Outbound == OutboundMode.Off)
            {
                error = new SmtpReply(550, "5.7.1", $"Relaying denied: <{recipient.Address}> is not a recipient tenant '{tenant.Name}' may send to through Postern");
                return null;
            }
            var route = tenant.Outbound == OutboundMode.ViaM365 ? RecipientRoute.ViaM365 : RecipientRoute.Mx;
            result.Add(new EnvelopeRecipient(recipient.LocalPart + "@" + domain, route));
        }
        return result;
    }

    /// <summary>
    /// One stored copy per distinct verdict: recipients with the same verdict share a copy. The first
    /// keeps the queue id the client was told; the others get their own.
    /// </summary>
    private static List<(Envelope Envelope, Verdict Verdict)> Split(Envelope envelope, ScanResult scan)
    {
        var groups = Enumerable.Range(0, envelope.Recipients.Count)
            .GroupBy(i => (scan.Verdicts[i].Action, scan.Verdicts[i].Rule, scan.Verdicts[i].SubjectTag))
            .ToList();
        var parts = new List<(Envelope, Verdict)>(groups.Count);
        foreach (var group in groups)
        {
            var id = parts.Count == 0 ? envelope.QueueId : QueueId.New();
            parts.Add((envelope with { QueueId = id, Recipients = group.Select(i => envelope.Recipients[i]).ToArray() }, scan.Verdicts[group.First()]));
        }
        return parts;
    }

    private static string Describe(Verdict verdict) =>
        verdict.Action.ToString().ToLowerInvariant() + (verdict.Rule == Verdict.Clean.Rule ? "" : $" (rule {verdict.Rule})");

    /// <summary>
    /// Postern's Received line and verdict header, then the original header section without the relay
    /// key (and, when tagging, with the subject tagged).
    /// </summary>
    private byte[] BuildHead(Envelope envelope, HeaderSection headers, ReadOnlySpan<byte> section, string keyHeader, Verdict verdict,
        IReadOnlyList<KeyValuePair<string, string>> annotations)
    {
        var authservId = relay.Options.Signing.ResolveArcDomain(relay.Options.ProductDomain);
        var received = ReceivedLine(envelope);
        if (annotations.Count > 0)
        {
            foreach (var (field, value) in annotations)
                received = [.. received, .. Authentication.SigningView.ToBytes(new MimeKit.Header(Encoding.UTF8, field, value))]; // CRLF, not the platform's LF
        }
        var verdictLine = Encoding.ASCII.GetBytes($"{relay.Options.HeaderPrefix}Verdict: {SanitizeHeader(Describe(verdict))}\r\n");
        var subjectLine = verdict.Action == VerdictAction.Tag && !string.IsNullOrEmpty(verdict.SubjectTag)
            ? TaggedSubject(headers, verdict.SubjectTag)
            : null;
        var output = new byte[received.Length + verdictLine.Length + (subjectLine?.Length ?? 0) + section.Length];
        received.CopyTo(output, 0);
        var at = received.Length;
        verdictLine.CopyTo(output, at);
        at += verdictLine.Length;
        if (subjectLine is not null)
        {
            subjectLine.CopyTo(output, at);
            at += subjectLine.Length;
        }
        var from = 0;
        foreach (var header in headers.Headers)
        {
            var drop = header.Name.Equals(keyHeader, StringComparison.OrdinalIgnoreCase)
                || (subjectLine is not null && header.Name.Equals("Subject", StringComparison.OrdinalIgnoreCase))
                || IsForgedResults(header, authservId);
            if (!drop)
                continue;
            section[from..header.Start].CopyTo(output.AsSpan(at));
            at += header.Start - from;
            from = header.End;
        }
        section[from..].CopyTo(output.AsSpan(at));
        at += section.Length - from;
        return output.AsSpan(0, at).ToArray();
    }

    /// <summary>An Authentication-Results field that claims to be Postern's but did not come from this pass: never trusted, never kept.</summary>
    private static bool IsForgedResults(RawHeader header, string authservId) =>
        header.Name.Equals("Authentication-Results", StringComparison.OrdinalIgnoreCase)
        && header.Value.TrimStart().StartsWith(authservId, StringComparison.OrdinalIgnoreCase)
        && (header.Value.TrimStart().Length == authservId.Length || header.Value.TrimStart()[authservId.Length] is ';' or ' ' or '\t');

    private static byte[] TaggedSubject(HeaderSection headers, string tag)
    {
        var subject = DecodeSubject(headers) ?? "";
        var header = new MimeKit.Header(Encoding.UTF8, MimeKit.HeaderId.Subject, $"{tag} {subject}".TrimEnd());
        return Authentication.SigningView.ToBytes(header); // CRLF, not the platform's LF
    }

    private static string SanitizeHeader(string value) => new(value.Where(c => c >= ' ' && c != 127).ToArray());

    private byte[] ReceivedLine(Envelope envelope)
    {
        var protocol = (transaction.SmtpUtf8 ? "UTF8SMTP" : session.IsExtended ? "ESMTP" : "SMTP") + (session.IsTls ? "S" : "");
        var tls = session.IsTls ? $"\r\n\t(using {session.TlsProtocol} with cipher {session.TlsCipher})" : "";
        var helo = Sanitize(session.HeloName ?? "unknown");
        var forClause = envelope.Recipients.Count == 1 ? $"\r\n\tfor <{Sanitize(envelope.Recipients[0].Address)}>" : "";
        var date = envelope.ReceivedAt.ToString("ddd, dd MMM yyyy HH:mm:ss +0000", CultureInfo.InvariantCulture);
        var line = $"Received: from {helo} ([{session.RemoteEndPoint.Address}]){tls}\r\n\tby {relay.Options.HostName} (Postern) with {protocol} id {envelope.QueueId}{forClause};\r\n\t{date}\r\n";
        return Encoding.UTF8.GetBytes(line);
    }

    private static string Sanitize(string value) =>
        new(value.Where(c => c > ' ' && c != '(' && c != ')' && c != ';' && c < 127 || c > 127).Take(255).ToArray());

    private static string? DecodeSubject(HeaderSection headers)
    {
        var raw = headers.Values("Subject").FirstOrDefault();
        if (raw is null)
            return null;
        var decoded = MimeKit.Utils.Rfc2047.DecodeText(Encoding.UTF8.GetBytes(raw));
        return decoded.Length > 500 ? decoded[..500] : decoded;
    }

    private async Task<SmtpReply> HandOffAsync(Envelope envelope, byte[] head, int contentOffset, ScanResult scan, CancellationToken cancellationToken)
    {
        var bodyLength = head.Length + content.Length - contentOffset;
        var results = await relay.Scheduler.DeliverNowAsync(envelope, () => OpenCopy(head, contentOffset), cancellationToken).ConfigureAwait(false);
        relay.Trace.Write(new MessageReceived(envelope, bodyLength, MessageStates.Queued, "handoff", Describe(scan.MostSevere), scan.Findings));
        if (results.All(r => r.Result.Outcome == Delivery.RecipientOutcome.Delivered))
        {
            relay.Trace.Write(new MessageStateChanged(envelope.QueueId, DateTimeOffset.UtcNow, MessageStates.Delivered, results[^1].Result.Reply));
            return new SmtpReply(250, "2.0.0", $"Ok: delivered as {envelope.QueueId}");
        }
        if (results.Any(r => r.Result.Outcome == Delivery.RecipientOutcome.Delivered))
        {
            // Some recipients have it already: queue the rest rather than make the client send everyone a duplicate.
            var done = results.Where(r => r.Result.Outcome != Delivery.RecipientOutcome.Deferred).Select(r => r.Index).ToArray();
            var stored = await relay.Spool.AppendAsync(envelope, head, content, contentOffset, cancellationToken).ConfigureAwait(false);
            relay.Spool.Finish(stored, done);
            relay.Scheduler.Enqueue(stored);
            return new SmtpReply(250, "2.0.0", $"Ok: queued as {envelope.QueueId} (partly delivered)");
        }
        var first = results[0].Result;
        relay.Trace.Write(new MessageStateChanged(envelope.QueueId, DateTimeOffset.UtcNow, MessageStates.Refused, first.Reply));
        return first.Outcome == Delivery.RecipientOutcome.Failed
            ? new SmtpReply(554, "5.4.0", $"Next hop refused the message: {Truncate(first.Reply)}")
            : new SmtpReply(451, "4.4.1", $"Next hop did not accept the message; try again later: {Truncate(first.Reply)}");
    }

    /// <summary>The message as it would be stored: <paramref name="head"/>, then the received content after its header section.</summary>
    private MemoryStream OpenCopy(byte[] head, int contentOffset)
    {
        var stream = new MemoryStream((int)Math.Min(head.Length + content.Length - contentOffset, int.MaxValue));
        stream.Write(head);
        using (var rest = content.OpenRead(contentOffset))
            rest.CopyTo(stream);
        stream.Position = 0;
        return stream;
    }

    private static string Truncate(string text) => text.Length > 200 ? text[..200] : text.Replace("\r", " ").Replace("\n", " ");

    private SmtpReply Refuse(HeaderSection? headers, SmtpReply reply, string reason, Tenant? tenant = null, ScanResult? scan = null)
    {
        var envelope = new Envelope
        {
            QueueId = QueueId.New(),
            ReceivedAt = DateTimeOffset.UtcNow,
            TenantId = tenant?.Id ?? Guid.Empty,
            MailFrom = transaction.From.Address,
            Recipients = transaction.Recipients.Select(r => new EnvelopeRecipient(r.Address, RecipientRoute.Tenant)).ToArray(),
            Client = session.RemoteEndPoint.Address.ToString(),
            HeloName = session.HeloName,
            Subject = headers is null ? null : DecodeSubject(headers),
            MessageId = headers?.Values("Message-ID").FirstOrDefault(),
        };
        relay.Trace.Write(new MessageReceived(envelope, content.Length, MessageStates.Refused, $"{reply.Code} {reply.EnhancedCode} {reason}",
            scan is null ? null : Describe(scan.MostSevere), scan?.Findings));
        RelayLog.Refused(relay.Logger, envelope.QueueId, envelope.Client, reply.Code, reason);
        return reply;
    }
}
