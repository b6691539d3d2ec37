namespace Postern.ExoEmulator.MailFlow;

/// <summary>
/// Where delivered mail lands: a Maildir per mailbox (named by its address) and one named "Internet" for mail that
/// left the service. Each message is written to tmp/ and renamed into new/, as Maildir readers expect.
/// </summary>
public sealed class Maildir(string root)
{
    public const string Internet = "Internet";

    private long _sequence;

    public string Root { get; } = root;

    public string Deliver(string mailbox, byte[] message)
    {
        var directory = Folder(mailbox);
        Directory.CreateDirectory(Path.Combine(directory, "tmp"));
        Directory.CreateDirectory(Path.Combine(directory, "new"));
        Directory.CreateDirectory(Path.Combine(directory, "cur"));
        var name = $"{DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()}.{Environment.ProcessId}_{Interlocked.Increment(ref _sequence)}.exo-emulator";
        var tmp = Path.Combine(directory, "tmp", name);
        File.WriteAllBytes(tmp, message);
        var final = Path.Combine(directory, "new", name);
        File.Move(tmp, final);
        return final;
    }

    /// <summary>The messages in a mailbox's new/, oldest first.</summary>
    public IReadOnlyList<string> Messages(string mailbox)
    {
        var directory = Path.Combine(Folder(mailbox), "new");
        return Directory.Exists(directory)
            ? [.. Directory.GetFiles(directory).OrderBy(f => f, StringComparer.Ordinal)]
            : [];
    }

    private string Folder(string mailbox)
    {
        var name = mailbox.ToLowerInvariant();
        if (name.Length == 0 || name.IndexOfAny(['/', '\\', '\0']) >= 0 || name is "." or "..")
            throw new ArgumentException($"'{mailbox}' cannot name a Maildir", nameof(mailbox));
        return Path.Combine(Root, name == "internet" ? Internet : name);
    }
}
