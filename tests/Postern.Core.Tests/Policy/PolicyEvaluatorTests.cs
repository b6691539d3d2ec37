using MimeKit;
using Postern.Core.Policy;
using Postern.Core.Scanning;
using Postern.Core.Scanning.Engines;
using Postern.Core.Spool;
using Postern.Core.Tenants;
using Postern.Core.Tests.Scanning;

namespace Postern.Core.Tests.Policy;

public sealed class PolicyEvaluatorTests
{
    private static readonly Tenant Contoso = new()
    {
        Id = Guid.NewGuid(),
        Name = "contoso",
        Region = "eu",
        LoopToken = LoopToken.Generate(),
        CreatedAt = DateTimeOffset.UtcNow,
    };

    private static ScanContext Context(RecipientRoute route = RecipientRoute.Tenant, string subject = "Quarterly report", string body = "Numbers attached.",
        string? attachment = null, long size = 1000, string[]? recipients = null)
    {
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("alice@fabrikam.test"));
        message.To.Add(MailboxAddress.Parse("bob@contoso.test"));
        message.Subject = subject;
        var builder = new BodyBuilder { TextBody = body };
        if (attachment is not null)
            builder.Attachments.Add(attachment, new byte[] { 1, 2, 3 });
        message.Body = builder.ToMessageBody();
        return new ScanContext
        {
            Envelope = new Envelope
            {
                QueueId = QueueId.New(),
                ReceivedAt = DateTimeOffset.UtcNow,
                TenantId = Contoso.Id,
                MailFrom = "alice@fabrikam.test",
                Recipients = (recipients ?? ["bob@contoso.test"]).Select(r => new EnvelopeRecipient(r, route)).ToList(),
                Client = "127.0.0.1",
            },
            Tenant = Contoso,
            Message = message,
            OpenRaw = () => new MemoryStream(),
            Size = size,
        };
    }

    private static Verdict Evaluate(ScanContext context, IReadOnlyList<Finding> findings, params PolicyRule[] rules) =>
        new PolicyEvaluator(rules).Evaluate(context, findings, context.Envelope.Recipients[0]);

    private static readonly Finding Eicar = new("clamav", FindingKinds.Virus, "Test.EICAR.NDB.UNOFFICIAL found", Subject: "Test.EICAR.NDB.UNOFFICIAL");

    [Fact]
    public void A_clean_message_is_delivered()
    {
        var verdict = Evaluate(Context(), [new Finding("rspamd", FindingKinds.SpamScore, "score 1.0", 1.0)]);
        Assert.Equal(VerdictAction.Deliver, verdict.Action);
    }

    [Fact]
    public void Inbound_malware_is_quarantined_and_outbound_malware_rejected_by_default()
    {
        var inbound = Evaluate(Context(RecipientRoute.Tenant), [Eicar]);
        Assert.Equal((VerdictAction.Quarantine, "quarantine-malware"), (inbound.Action, inbound.Rule));
        Assert.Contains("EICAR", inbound.Reason);

        var outbound = Evaluate(Context(RecipientRoute.Mx), [Eicar]);
        Assert.Equal(VerdictAction.Reject, outbound.Action);
        Assert.Equal((550, "5.7.1"), (outbound.Reply!.Code, outbound.Reply.EnhancedCode));
    }

    [Fact]
    public void An_engine_that_could_not_scan_defers_rather_than_passing_unscanned()
    {
        var verdict = Evaluate(Context(), [Eicar, new Finding("rspamd", FindingKinds.EngineUnavailable, "rspamd: connection refused")]);
        Assert.Equal(VerdictAction.Defer, verdict.Action);
        Assert.Equal(451, verdict.Reply!.Code);
        Assert.Contains("connection refused", verdict.Reason);
    }

    [Fact]
    public void Probable_spam_is_tagged_with_the_score_in_the_reason()
    {
        var verdict = Evaluate(Context(), [new Finding("rspamd", FindingKinds.SpamScore, "score 7.5", 7.5)]);
        Assert.Equal((VerdictAction.Tag, "[SPAM?]"), (verdict.Action, verdict.SubjectTag));
        Assert.Contains("7.5", verdict.Reason);
    }

    [Fact]
    public void Tenant_rules_come_before_the_defaults_and_the_first_match_decides()
    {
        var allowPartner = new PolicyRule
        {
            Name = "partner-invoices",
            Priority = 10,
            When = new RuleConditions { Sender = ["*@fabrikam.test"], AttachmentName = ["*.xlsm"] },
            Then = new RuleAction { Action = VerdictAction.Deliver },
        };
        var context = Context(attachment: "invoice.xlsm");
        var macro = new Finding("attachments", FindingKinds.MacroDocument, "invoice.xlsm has macros", Subject: "invoice.xlsm");
        Assert.Equal("partner-invoices", Evaluate(context, [macro], allowPartner).Rule);
        Assert.Equal("tag-risky-attachments", Evaluate(context, [macro]).Rule);
    }

    [Theory]
    [InlineData("Please wire the money today", true)]
    [InlineData("Wireless headsets on sale", false)]
    public void Body_words_match_whole_words_in_subject_or_text(string body, bool matches)
    {
        var rule = new PolicyRule
        {
            Name = "wire-fraud",
            Priority = 5,
            When = new RuleConditions { Direction = "inbound", BodyWords = ["wire"] },
            Then = new RuleAction { Action = VerdictAction.Tag, SubjectTag = "[Check payment]" },
        };
        Assert.Equal(matches ? "wire-fraud" : "default", Evaluate(Context(body: body), [], rule).Rule);
    }

    [Fact]
    public void Size_and_header_conditions_must_all_hold()
    {
        var rule = new PolicyRule
        {
            Name = "big-from-list",
            Priority = 5,
            When = new RuleConditions { SizeAbove = 5000, Header = new HeaderCondition("Subject", "^quarterly") },
            Then = new RuleAction { Action = VerdictAction.Reject, ReplyText = "Too big" },
        };
        Assert.Equal("default", Evaluate(Context(size: 1000), [], rule).Rule);
        var verdict = Evaluate(Context(size: 10_000), [], rule);
        Assert.Equal((VerdictAction.Reject, "Too big"), (verdict.Action, verdict.Reply!.Text));
    }

    [Fact]
    public void A_recipient_condition_is_judged_per_recipient()
    {
        var rule = new PolicyRule
        {
            Name = "bob-tagged",
            Priority = 5,
            When = new RuleConditions { Recipient = ["bob@*"] },
            Then = new RuleAction { Action = VerdictAction.Tag, SubjectTag = "[X]" },
        };
        var context = Context(recipients: ["alice@contoso.test", "BOB@contoso.test"]);
        var evaluator = new PolicyEvaluator([rule]);

        Assert.Equal("default", evaluator.Evaluate(context, [], context.Envelope.Recipients[0]).Rule);
        var bob = evaluator.Evaluate(context, [], context.Envelope.Recipients[1]);
        Assert.Equal(("bob-tagged", VerdictAction.Tag, "[X]"), (bob.Rule, bob.Action, bob.SubjectTag));
    }

    [Fact]
    public void A_direction_outbound_rule_leaves_inbound_mail_alone()
    {
        var rule = new PolicyRule
        {
            Name = "no-big-outbound",
            Priority = 5,
            When = new RuleConditions { Direction = "outbound", SizeAbove = 5000 },
            Then = new RuleAction { Action = VerdictAction.Reject, ReplyText = "Too big to send out" },
        };

        Assert.Equal("default", Evaluate(Context(RecipientRoute.Tenant, size: 10_000), [], rule).Rule);
        Assert.Equal("default", Evaluate(Context(RecipientRoute.Mx, size: 1000), [], rule).Rule);
        var outbound = Evaluate(Context(RecipientRoute.Mx, size: 10_000), [], rule);
        Assert.Equal(("no-big-outbound", 550, "Too big to send out"), (outbound.Rule, outbound.Reply!.Code, outbound.Reply.Text));
    }

    private static readonly PolicyRule NoPrograms = new()
    {
        Name = "no-programs",
        Priority = 5,
        When = new RuleConditions { AttachmentType = ["pe", "script-js"] },
        Then = new RuleAction { Action = VerdictAction.Reject },
    };

    [Fact]
    public void An_attachment_type_condition_finds_a_program_inside_an_archive_by_its_content()
    {
        var findings = new AttachmentTypeEngine().InspectAttachment("documents.zip",
            TestFiles.Zip(("docs/readme.txt", TestFiles.Text("hello")), ("docs/invoice.pdf", TestFiles.Pe())));

        var verdict = Evaluate(Context(attachment: "documents.zip"), findings, NoPrograms);

        Assert.Equal(("no-programs", VerdictAction.Reject), (verdict.Rule, verdict.Action));
        Assert.Contains("documents.zip > docs/invoice.pdf", verdict.Reason);
    }

    [Fact]
    public void An_attachment_type_condition_goes_by_content_not_by_name()
    {
        var findings = new AttachmentTypeEngine().InspectAttachment("setup.exe", TestFiles.Pdf());

        Assert.Equal("default", Evaluate(Context(attachment: "setup.exe"), findings, NoPrograms).Rule);
        var pdfOnly = NoPrograms with { Name = "pdfs", When = new RuleConditions { AttachmentType = ["PDF"] }, Then = new RuleAction { Action = VerdictAction.Tag } };
        Assert.Equal("pdfs", Evaluate(Context(attachment: "setup.exe"), findings, pdfOnly).Rule);
    }

    [Fact]
    public void A_script_named_as_text_matches_its_script_type()
    {
        var findings = new AttachmentTypeEngine().InspectAttachment("notes.txt", TestFiles.Text("var fs = new ActiveXObject(\"Scripting.FileSystemObject\");"));

        Assert.Equal("no-programs", Evaluate(Context(attachment: "notes.txt"), findings, NoPrograms).Rule);
    }

    [Fact]
    public void Authentication_kinds_tell_a_dmarc_failure_from_an_spf_softfail()
    {
        var dmarc = new Finding("authentication", FindingKinds.Dmarc, "DMARC fail for fabrikam.test (policy reject): no aligned pass", Subject: "dmarc=fail");
        var softfail = new Finding("authentication", FindingKinds.Spf, "SPF softfail for fabrikam.test from 203.0.113.66", Subject: "spf=softfail");
        var rejectDmarc = new PolicyRule
        {
            Name = "dmarc-fail",
            Priority = 5,
            When = new RuleConditions { Finding = [FindingKinds.Dmarc] },
            Then = new RuleAction { Action = VerdictAction.Quarantine },
        };
        var anyFailure = rejectDmarc with { Name = "any-auth", When = new RuleConditions { Finding = [FindingKinds.Authentication] }, Then = new RuleAction { Action = VerdictAction.Tag } };

        Assert.Equal("default", Evaluate(Context(), [softfail], rejectDmarc).Rule);
        Assert.Equal("dmarc-fail", Evaluate(Context(), [softfail, dmarc], rejectDmarc).Rule);
        Assert.Equal("any-auth", Evaluate(Context(), [softfail], anyFailure).Rule);
        Assert.Equal("default", Evaluate(Context(), [softfail, dmarc]).Rule);
    }

    [Theory]
    [InlineData("*@contoso.test", "bob@contoso.test", true)]
    [InlineData("*@contoso.test", "bob@evilcontoso.test", false)]
    [InlineData("b?b@*", "BOB@contoso.test", true)]
    [InlineData("*.exe", "invoice.pdf.exe", true)]
    [InlineData("*.exe", "invoice.exe.pdf", false)]
    public void Globs_are_case_insensitive_and_anchored(string pattern, string value, bool expected) =>
        Assert.Equal(expected, PolicyEvaluator.Glob(pattern, value));
}
