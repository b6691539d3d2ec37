namespace Postern.Smtp.Internal;

/// <summary>
/// The replies the protocol layer itself sends. Enhanced codes follow RFC 3463 / RFC 5248;
/// an empty enhanced code means "none" (greeting, HELO/EHLO, 354: RFC 2034 §3 exempts them).
/// </summary>
internal static class SmtpReplies
{
    public static readonly SmtpReply Ok = new(250, "2.0.0", "Ok");
    public static readonly SmtpReply SenderOk = new(250, "2.1.0", "Sender ok");
    public static readonly SmtpReply RecipientOk = new(250, "2.1.5", "Recipient ok");
    public static readonly SmtpReply Bye = new(221, "2.0.0", "Bye");
    public static readonly SmtpReply Help = new(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT HELP VRFY STARTTLS");
    public static readonly SmtpReply Vrfy = new(252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery");
    public static readonly SmtpReply StartData = new(354, "", "End data with <CR><LF>.<CR><LF>");
    public static readonly SmtpReply ReadyToStartTls = new(220, "2.0.0", "Ready to start TLS");

    // Syntax and sequence errors (counted towards SmtpLimits.MaxErrors).
    public static readonly SmtpReply CommandUnrecognized = new(500, "5.5.2", "Command unrecognized");
    public static readonly SmtpReply CommandLineTooLong = new(500, "5.5.2", "Line too long");
    public static readonly SmtpReply BareLineEnding = new(500, "5.5.2", "Bare CR or LF in command line; lines must end with CRLF");
    public static readonly SmtpReply InvalidUtf8 = new(500, "5.5.2", "Command line is not valid UTF-8");
    public static readonly SmtpReply ExpnRefused = new(502, "5.5.1", "EXPN not available");
    public static readonly SmtpReply StartTlsUnavailable = new(502, "5.5.1", "STARTTLS not available");
    public static readonly SmtpReply TlsAlreadyActive = new(503, "5.5.1", "TLS already active");
    public static readonly SmtpReply StartTlsInTransaction = new(503, "5.5.1", "STARTTLS not allowed during a mail transaction");
    public static readonly SmtpReply NeedHelo = new(503, "5.5.1", "Send EHLO or HELO first");
    public static readonly SmtpReply NestedMail = new(503, "5.5.1", "Nested MAIL command");
    public static readonly SmtpReply NeedMail = new(503, "5.5.1", "Need MAIL command");
    public static readonly SmtpReply NeedEhloForBdat = new(503, "5.5.1", "BDAT requires EHLO");
    public static readonly SmtpReply RcptAfterBdat = new(503, "5.5.1", "RCPT not allowed after BDAT");
    public static readonly SmtpReply DataAfterBdat = new(503, "5.5.1", "DATA not allowed after BDAT in the same transaction");
    public static readonly SmtpReply NoValidRecipients = new(554, "5.5.1", "No valid recipients");
    public static readonly SmtpReply MustStartTls = new(530, "5.7.0", "Must issue a STARTTLS command first");
    public static readonly SmtpReply SyntaxHelo = new(501, "5.5.4", "Syntax: EHLO domain-or-address-literal");
    public static readonly SmtpReply SyntaxMail = new(501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]");
    public static readonly SmtpReply SyntaxRcpt = new(501, "5.5.4", "Syntax: RCPT TO:<address>");
    public static readonly SmtpReply SyntaxBdat = new(501, "5.5.4", "Syntax: BDAT size [LAST]");
    public static readonly SmtpReply SyntaxVrfy = new(501, "5.5.4", "Syntax: VRFY string");
    public static readonly SmtpReply SyntaxNoArguments = new(501, "5.5.4", "Syntax error: no arguments allowed");
    public static readonly SmtpReply SyntaxParameter = new(501, "5.5.4", "Syntax error in parameters");
    public static readonly SmtpReply DuplicateParameter = new(501, "5.5.4", "Duplicate parameter");
    public static readonly SmtpReply BadBodyType = new(501, "5.5.4", "BODY must be 7BIT or 8BITMIME");
    // Not advertised (RFC 3030 §3): its content is opaque octets, which a relay that must refuse bare CR/LF cannot pass on.
    public static readonly SmtpReply BinaryMimeUnsupported = new(555, "5.5.4", "BODY=BINARYMIME is not supported; send the message as 8BITMIME or 7BIT");
    public static readonly SmtpReply BadAddress = new(501, "5.1.3", "Bad address syntax");
    public static readonly SmtpReply NullRecipient = new(501, "5.1.3", "The null address is not a valid recipient");
    public static readonly SmtpReply SourceRoute = new(501, "5.1.3", "Source routes are not accepted");
    public static readonly SmtpReply NonAsciiAddress = new(553, "5.6.7", "Non-ASCII address requires SMTPUTF8");
    public static readonly SmtpReply UnsupportedParameter = new(555, "5.5.4", "Unsupported parameter");
    public static readonly SmtpReply ParametersNeedEhlo = new(555, "5.5.4", "Parameters require EHLO");

    // Limits and policy of the server itself (not counted as client errors).
    public static readonly SmtpReply MessageTooBig = new(552, "5.3.4", "Message size exceeds fixed limit");
    // RFC 5321 §4.5.3.1.10 prescribes 500 "Line too long"; the problem is in the content, hence X.6.0
    // (RFC 3463 "other or undefined media error") rather than 5.5.6, which RFC 4954 reserves for AUTH.
    public static readonly SmtpReply TextLineTooLong = new(500, "5.6.0", "Line too long");
    public static readonly SmtpReply BareLineEndingInContent = new(550, "5.6.0", "Message refused: bare CR or LF line endings (only CRLF is allowed)");
    public static readonly SmtpReply HeaderSectionTooLarge = new(554, "5.6.0", "Header section too large");
    public static readonly SmtpReply TooManyRecipients = new(452, "4.5.3", "Too many recipients");
    public static readonly SmtpReply TemporaryServerError = new(451, "4.3.0", "Temporary server error");

    // Session enders.
    public static readonly SmtpReply TooManyErrors = new(421, "4.7.0", "Too many errors, closing connection");
    public static readonly SmtpReply TooManyCommands = new(421, "4.7.0", "Too many commands without progress, closing connection");
    public static readonly SmtpReply IdleTimeout = new(421, "4.4.2", "Idle timeout");
    public static readonly SmtpReply SessionTimeout = new(421, "4.4.2", "Session time limit exceeded");
    public static readonly SmtpReply ShuttingDown = new(421, "4.3.2", "Service shutting down");
    public static readonly SmtpReply TooManyConnectionsFromAddress = new(421, "4.7.0", "Too many connections from your address");
    public static readonly SmtpReply ClientNotAllowed = new(554, "5.7.1", "Access denied: your network may not connect to this service");
    public static readonly SmtpReply TooManyConnections = new(421, "4.7.0", "Too many connections, try again later");
}
