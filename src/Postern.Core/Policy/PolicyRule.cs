namespace Postern.Core.Policy;

/// <summary>
/// One policy rule, in the spirit of Proxmox Mail Gateway and MailMarshal: conditions (all must hold)
/// and an action. Rules are tried in priority order (lowest number first); the first match decides.
/// Stored as JSON so rules can be added without schema changes.
/// </summary>
public sealed record PolicyRule
{
    public required string Name { get; init; }

    /// <summary>Lower runs first. Built-in defaults use 1000 and above, so tenant rules come first.</summary>
    public int Priority { get; init; } = 100;

    public RuleConditions When { get; init; } = new();

    public RuleAction Then { get; init; } = new();
}

/// <summary>Conditions of a rule; unset ones match anything. All set ones must match.</summary>
public sealed record RuleConditions
{
    /// <summary>"inbound" or "outbound".</summary>
    public string? Direction { get; init; }

    /// <summary>Envelope sender patterns: "*@domain", "user@domain", "*" wildcards.</summary>
    public IReadOnlyList<string>? Sender { get; init; }

    /// <summary>Recipient patterns, tested per recipient.</summary>
    public IReadOnlyList<string>? Recipient { get; init; }

    /// <summary>A header whose value matches a regular expression (case-insensitive).</summary>
    public HeaderCondition? Header { get; init; }

    /// <summary>Any of these words in the subject or text body (case-insensitive, whole words).</summary>
    public IReadOnlyList<string>? BodyWords { get; init; }

    public long? SizeAbove { get; init; }

    /// <summary>Attachment file name patterns ("*.exe").</summary>
    public IReadOnlyList<string>? AttachmentName { get; init; }

    /// <summary>
    /// True attachment types (file type ids such as "pe", "zip", "script-js", "pdf"), any of which matches: of an
    /// attachment or of anything inside an archive attachment, judged by content, whatever the file is called.
    /// </summary>
    public IReadOnlyList<string>? AttachmentType { get; init; }

    /// <summary>Finding kinds (see FindingKinds), any of which matches, e.g. "virus", "attachment-executable".</summary>
    public IReadOnlyList<string>? Finding { get; init; }

    /// <summary>Spam score (rspamd) at or above this.</summary>
    public double? SpamScoreAtLeast { get; init; }
}

public sealed record HeaderCondition(string Name, string Pattern);

/// <summary>What a matching rule does.</summary>
public sealed record RuleAction
{
    public VerdictAction Action { get; init; } = VerdictAction.Deliver;

    /// <summary>With Tag: text put before the subject, e.g. "[SPAM]".</summary>
    public string? SubjectTag { get; init; }

    /// <summary>With Reject or Defer: the reply text (the code and enhanced code follow the action).</summary>
    public string? ReplyText { get; init; }
}
