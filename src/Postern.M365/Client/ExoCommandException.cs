namespace Postern.M365.Client;

/// <summary>
/// A cmdlet Exchange Online did not carry out. <see cref="Exception.Message"/> is one line naming
/// the cmdlet and the item ("New-TransportRule 'Postern Redirect': … (ManagementObjectNotFoundException)").
/// </summary>
public sealed class ExoCommandException : Exception
{
    public ExoCommandException(string cmdlet, string? target, string text, string? exceptionType = null, int status = 0, Exception? inner = null, bool outcomeUnknown = false)
        : base(Format(cmdlet, target, text, exceptionType), inner)
    {
        Cmdlet = cmdlet;
        Target = target;
        Text = text;
        ExceptionType = exceptionType;
        Status = status;
        OutcomeUnknown = outcomeUnknown;
    }

    /// <summary>
    /// A change whose answer never came or was a server error (timeout, 5xx): Exchange may or may not have made it,
    /// so it is not sent again until the item has been read back.
    /// </summary>
    public bool OutcomeUnknown { get; }

    public string Cmdlet { get; }

    public string? Target { get; }

    /// <summary>Exchange's own explanation, without the cmdlet and item.</summary>
    public string Text { get; }

    /// <summary>The .NET exception type Exchange reported, e.g. Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException.</summary>
    public string? ExceptionType { get; }

    /// <summary>The HTTP status (0 when no answer came).</summary>
    public int Status { get; }

    /// <summary>The object named does not exist (so deleting it again is done already).</summary>
    public bool IsNotFound => Status == 404 || ExceptionType?.EndsWith("ManagementObjectNotFoundException", StringComparison.Ordinal) == true;

    private static string Format(string cmdlet, string? target, string text, string? exceptionType)
    {
        var line = (target is null ? cmdlet : $"{cmdlet} '{target}'") + ": " + OneLine(text);
        if (exceptionType is { Length: > 0 })
            line += $" ({exceptionType.Split('.').Last()})";
        return line;
    }

    internal static string OneLine(string text) =>
        string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries).Select(l => l.Trim())).Trim();
}
