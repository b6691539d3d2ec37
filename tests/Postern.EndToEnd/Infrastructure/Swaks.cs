using System.Text.RegularExpressions;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>What one swaks run printed: the SMTP transcript and its exit code.</summary>
public sealed partial record SwaksResult(int ExitCode, string Transcript, string Command)
{
    /// <summary>
    /// Server replies ("250 2.0.0 Ok: ...", "550 5.7.1 ..."), in order, one per line of reply. swaks marks them
    /// "&lt;-  " (plain), "&lt;** " (plain, error), "&lt;~  " (TLS) and "&lt;~* " (TLS, error).
    /// </summary>
    public IReadOnlyList<string> Replies => Transcript.Split('\n')
        .Where(l => ReplyMarkers.Any(m => l.StartsWith(m, StringComparison.Ordinal)))
        .Select(l => l[4..].TrimEnd('\r'))
        .ToList();

    private static readonly string[] ReplyMarkers = ["<-  ", "<** ", "<~  ", "<~* "];

    /// <summary>True when some reply line starts with <paramref name="prefix"/> (e.g. "550 5.7.1").</summary>
    public bool HasReply(string prefix) => Replies.Any(r => r.StartsWith(prefix, StringComparison.Ordinal));

    /// <summary>The id from "250 ... queued as ID", when the message was accepted.</summary>
    public string? QueueId => Replies.Select(r => QueuedAs().Match(r)).FirstOrDefault(m => m.Success)?.Groups[1].Value;

    public override string ToString() => $"{Command} → exit {ExitCode}\n{Transcript}";

    [GeneratedRegex(@"^250[ -].*queued as (\S+)")]
    private static partial Regex QueuedAs();
}

/// <summary>Runs swaks (the Swiss Army Knife for SMTP) against a loopback server.</summary>
public static class Swaks
{
    /// <summary>
    /// Sends one message to 127.0.0.1:<paramref name="port"/>. <paramref name="extra"/> are more swaks
    /// arguments (e.g. "--tls", "--add-header", "X-Postern-Key: ...", "--quit-after", "RCPT").
    /// </summary>
    public static async Task<SwaksResult> SendAsync(int port, string from, string to, string subject, params string[] extra)
    {
        var args = new List<string>
        {
            "--server", $"127.0.0.1:{port}",
            "--from", from,
            "--to", to,
            "--helo", "client.test",
            "--header", $"Subject: {subject}",
            "--body", $"Body of {subject}.",
            "--timeout", "30",
            "--hide-informational",
        };
        args.AddRange(extra);
        return await RunAsync(args.ToArray());
    }

    /// <summary>swaks with exactly these arguments.</summary>
    public static async Task<SwaksResult> RunAsync(params string[] args)
    {
        var result = await ExternalCommand.RunAsync("swaks", args, TimeSpan.FromSeconds(90));
        return new SwaksResult(result.ExitCode, result.StdOut + result.StdErr, result.Command);
    }
}
