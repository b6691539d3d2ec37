using Postern.Core.Scanning;

namespace Postern.Core.Policy;

/// <summary>
/// The rules every tenant has after its own: never deliver unscanned, quarantine inbound malware and
/// spam (rejecting mail Microsoft 365 already accepted only sends backscatter), reject outbound malware.
/// </summary>
public static class DefaultPolicy
{
    public static IReadOnlyList<PolicyRule> Rules { get; } =
    [
        new()
        {
            Name = "defer-when-an-engine-is-down", Priority = 1000,
            When = new() { Finding = [FindingKinds.EngineUnavailable] },
            Then = new() { Action = VerdictAction.Defer, ReplyText = "Scanning is temporarily unavailable; please try again later" },
        },
        new()
        {
            Name = "reject-outbound-malware", Priority = 1010,
            When = new() { Direction = "outbound", Finding = [FindingKinds.Virus] },
            Then = new() { Action = VerdictAction.Reject, ReplyText = "Message refused: it contains malware" },
        },
        new()
        {
            Name = "quarantine-malware", Priority = 1020,
            When = new() { Finding = [FindingKinds.Virus, FindingKinds.Executable, FindingKinds.Script] },
            Then = new() { Action = VerdictAction.Quarantine },
        },
        new()
        {
            Name = "quarantine-spam", Priority = 1030,
            When = new() { Finding = [FindingKinds.Spam] },
            Then = new() { Action = VerdictAction.Quarantine },
        },
        new()
        {
            Name = "tag-risky-attachments", Priority = 1040,
            When = new() { Finding = [FindingKinds.MacroDocument, FindingKinds.EncryptedArchive, FindingKinds.NestedArchive] },
            Then = new() { Action = VerdictAction.Tag, SubjectTag = "[Caution: attachment]" },
        },
        new()
        {
            Name = "tag-impersonation", Priority = 1050,
            When = new() { Direction = "inbound", Finding = [FindingKinds.DisplayNameImpersonation, FindingKinds.LookAlikeDomain] },
            Then = new() { Action = VerdictAction.Tag, SubjectTag = "[Caution: impersonation]" },
        },
        new()
        {
            Name = "tag-probable-spam", Priority = 1060,
            When = new() { SpamScoreAtLeast = 6 },
            Then = new() { Action = VerdictAction.Tag, SubjectTag = "[SPAM?]" },
        },
    ];
}
