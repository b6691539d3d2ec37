namespace Postern.Smtp;

/// <summary>
/// One SMTP reply: a three-digit code, an RFC 3463 enhanced status code and human text.
/// Text may hold several lines separated by '\n'; the writer turns them into a multi-line reply.
/// </summary>
public sealed record SmtpReply(int Code, string EnhancedCode, string Text)
{
    /// <summary>True for 2xx and 3xx replies.</summary>
    public bool IsPositive => Code < 400;

    /// <summary>True for 4xx replies: the client should try again later.</summary>
    public bool IsTransient => Code is >= 400 and < 500;

    public static SmtpReply Ok(string text = "Ok") => new(250, "2.0.0", text);

    public override string ToString() => $"{Code} {EnhancedCode} {Text}";
}
