using Postern.Core.Tenants;
using Postern.Smtp;

namespace Postern.Core.Relay;

/// <summary>Why a stage refused a message: the SMTP reply, the reason for the log and the trace, and the tenant if known by then.</summary>
public sealed record Refusal(SmtpReply Reply, string Reason, Tenant? Tenant = null);
