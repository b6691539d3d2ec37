using Postern.Smtp;

namespace Postern.Core.Policy;

/// <summary>What happens to a message (for one recipient).</summary>
public enum VerdictAction
{
    Deliver,

    /// <summary>Deliver with a header (and optionally a subject tag) saying what was found.</summary>
    Tag,

    /// <summary>Keep it whole in the quarantine; nothing is delivered until released.</summary>
    Quarantine,

    /// <summary>Refuse it at the end of DATA (5xx).</summary>
    Reject,

    /// <summary>Ask the sender to try later (4xx), e.g. because an engine could not scan.</summary>
    Defer,
}

/// <summary>The decision for a message or recipient, and why: the rule that decided and the findings it matched.</summary>
public sealed record Verdict(VerdictAction Action, string Rule, string Reason, string? SubjectTag = null, SmtpReply? Reply = null)
{
    public static Verdict Clean { get; } = new(VerdictAction.Deliver, "default", "no findings");

    /// <summary>"tag (rule NAME)": the action and the rule that decided, as the verdict header and the trace show it.</summary>
    public string Description => Action.ToString().ToLowerInvariant() + (Rule == Clean.Rule ? "" : $" (rule {Rule})");

    /// <summary>How severe the action is; when recipients differ, the SMTP reply follows the most severe.</summary>
    public int Severity => Action switch
    {
        VerdictAction.Deliver => 0,
        VerdictAction.Tag => 1,
        VerdictAction.Quarantine => 2,
        VerdictAction.Reject => 3,
        VerdictAction.Defer => 4,
        _ => 0,
    };
}
