using System.Net;
using System.Text;
using Postern.Core.Configuration;
using Postern.Core.Policy;
using Postern.Core.Relay;
using Postern.Core.Spool;
using Postern.Smtp;

namespace Postern.Core.Tests.Relay;

public sealed class CleanupStageTests : IDisposable
{
    private readonly string _spill = Directory.CreateTempSubdirectory("postern-cleanup-").FullName;
    private readonly CleanupStage _cleanup = new(new PosternOptions());

    public void Dispose() => Directory.Delete(_spill, recursive: true);

    [Fact]
    public void Removes_the_relay_key_and_forged_results_and_keeps_every_other_byte()
    {
        var received = "Received: from exo\r\n\tby exo; date\r\nX-Postern-Key: pk_secret\r\n" +
                       "Authentication-Results: arc.postern.example; spf=pass\r\nAuthentication-Results: mx.microsoft.com; spf=pass\r\n" +
                       "x-postern-key:\r\n pk_folded\r\nSubject:  odd  spacing \r\n\r\nbody\r\n.. dots\r\n";
        using var content = Content(received);
        var clean = _cleanup.Clean(HeaderSection.Parse(Encoding.ASCII.GetBytes(received), complete: true), content);

        var expected = "Received: from exo\r\n\tby exo; date\r\nAuthentication-Results: mx.microsoft.com; spf=pass\r\n" +
                       "Subject:  odd  spacing \r\n\r\nbody\r\n.. dots\r\n";
        Assert.Equal(expected, Read(clean));
        Assert.Equal(expected.Length, clean.Length);
    }

    [Fact]
    public void A_spilled_message_reads_the_same_cleaned_bytes()
    {
        var body = new string('x', 998) + "\r\n";
        var received = "X-Postern-Key: pk_secret\r\nSubject: big\r\n\r\n" + string.Concat(Enumerable.Repeat(body, 5000));
        using var content = Content(received);
        Assert.True(content.IsSpilled);
        var clean = _cleanup.Clean(HeaderSection.Parse(Encoding.ASCII.GetBytes(received[..100]), complete: false), content);
        Assert.Equal(received["X-Postern-Key: pk_secret\r\n".Length..], Read(clean));
    }

    [Fact]
    public void Each_copy_gets_the_trace_fields_on_top_then_its_verdict_and_tagged_subject()
    {
        var received = "From: a@partner.test\r\nSubject: Team lunch\r\n\r\nhi\r\n";
        using var content = Content(received);
        var clean = _cleanup.Clean(HeaderSection.Parse(Encoding.ASCII.GetBytes(received), complete: true), content);
        var session = new SmtpSessionInfo
        {
            SessionId = "s1",
            Listener = new SmtpListenerOptions { EndPoint = new IPEndPoint(IPAddress.Loopback, 25) },
            RemoteEndPoint = new IPEndPoint(IPAddress.Parse("203.0.113.7"), 40000),
            LocalEndPoint = new IPEndPoint(IPAddress.Loopback, 25),
        };
        var traceFields = _cleanup.TraceFields("QID123", DateTimeOffset.UnixEpoch, [new EnvelopeRecipient("bob@contoso.test", RecipientRoute.Tenant)], session,
            smtpUtf8: false, [new("Authentication-Results", "arc.postern.example; spf=pass")]);

        var head = Encoding.UTF8.GetString(_cleanup.HeadFor(traceFields, clean.Headers, new Verdict(VerdictAction.Tag, "tag-bob", "rule", "[X]")));

        Assert.StartsWith("Received: from unknown ([203.0.113.7])\r\n\tby postern.local (Postern) with SMTP id QID123\r\n\tfor <bob@contoso.test>;", head);
        var lines = head.Split("\r\n");
        Assert.Equal(
            ["Authentication-Results: arc.postern.example; spf=pass", "X-Postern-Verdict: tag (rule tag-bob)", "Subject: [X] Team lunch", "From: a@partner.test", "", ""],
            lines[4..]);
        // Only CRLF line ends: a bare LF in a stored header would change the message on the way out.
        Assert.DoesNotMatch("[^\r]\n", head);
        var plain = Encoding.UTF8.GetString(_cleanup.HeadFor(traceFields, clean.Headers, Verdict.Clean));
        Assert.EndsWith("X-Postern-Verdict: deliver\r\nFrom: a@partner.test\r\nSubject: Team lunch\r\n\r\n", plain);
    }

    private MessageContent Content(string text)
    {
        var content = new MessageContent(_spill);
        content.WriteAsync(Encoding.ASCII.GetBytes(text), default).AsTask().GetAwaiter().GetResult();
        return content;
    }

    private static string Read(CleanMessage message)
    {
        using var stream = message.OpenRead();
        return new StreamReader(stream, Encoding.ASCII).ReadToEnd();
    }
}
