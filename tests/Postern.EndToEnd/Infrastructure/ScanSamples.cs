using System.Text;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>
/// Messages for the scanning tests, built in code so the repository holds no EICAR file: the EICAR
/// string is decoded from the signature file Postern.Core.Tests ships, and GTUBE is rspamd's spam test string.
/// </summary>
public static class ScanSamples
{
    private static readonly Lazy<string> Root = new(() => FindUp("Postern.slnx", file: true)
        ?? throw new InvalidOperationException($"Postern.slnx not found above {AppContext.BaseDirectory}"));

    /// <summary>rspamd's GTUBE string; rspamd only looks for it in text parts of at most 8 KB.</summary>
    public const string Gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

    /// <summary>The repository root (the folder holding Postern.slnx).</summary>
    public static string RepositoryRoot => Root.Value;

    /// <summary>The ClamAV signature for EICAR that the scanning tests ship (hex-encoded, so no EICAR file is in the repository).</summary>
    public static string EicarSignaturePath => Path.Combine(RepositoryRoot, "tests", "Postern.Core.Tests", "Scanning", "data", "eicar.ndb");

    /// <summary>The EICAR test string, decoded from <see cref="EicarSignaturePath"/>.</summary>
    public static byte[] Eicar => Convert.FromHexString(File.ReadAllText(EicarSignaturePath).Trim().Split(':')[3]);

    /// <summary>shared/conformance, found beside the repository or any folder above the test assembly.</summary>
    public static string ConformanceDirectory =>
        FindUp(Path.Combine("shared", "conformance"), file: false)
        ?? throw new InvalidOperationException($"shared/conformance not found beside any parent of {AppContext.BaseDirectory}");

    /// <summary>
    /// A plain text message (CRLF line ends) with the relay key header on top, as the Exchange Online
    /// rule adds it. <paramref name="body"/> is the text part.
    /// </summary>
    public static byte[] TextMessage(string keyHeader, string from, string to, string subject, string body)
    {
        var text = $"""
            {keyHeader}
            From: <{from}>
            To: <{to}>
            Subject: {subject}
            Date: {DateTimeOffset.UtcNow:ddd, dd MMM yyyy HH:mm:ss} +0000
            Message-ID: <{Guid.NewGuid():N}@client.test>
            MIME-Version: 1.0
            Content-Type: text/plain; charset=us-ascii

            {body}

            """;
        return Encoding.ASCII.GetBytes(Crlf(text));
    }

    /// <summary>A multipart/mixed message: a short text part and one base64 attachment.</summary>
    public static byte[] MessageWithAttachment(string keyHeader, string from, string to, string subject, string fileName, byte[] attachment)
    {
        var boundary = "=_b" + Guid.NewGuid().ToString("N");
        var base64 = string.Join("\n", Convert.ToBase64String(attachment).Chunk(76).Select(c => new string(c)));
        var text = $"""
            {keyHeader}
            From: <{from}>
            To: <{to}>
            Subject: {subject}
            Date: {DateTimeOffset.UtcNow:ddd, dd MMM yyyy HH:mm:ss} +0000
            Message-ID: <{Guid.NewGuid():N}@client.test>
            MIME-Version: 1.0
            Content-Type: multipart/mixed; boundary="{boundary}"

            --{boundary}
            Content-Type: text/plain; charset=us-ascii

            Please find the file attached.

            --{boundary}
            Content-Type: application/octet-stream; name="{fileName}"
            Content-Disposition: attachment; filename="{fileName}"
            Content-Transfer-Encoding: base64

            {base64}
            --{boundary}--

            """;
        return Encoding.ASCII.GetBytes(Crlf(text));
    }

    public static string Crlf(string text) => text.Replace("\r\n", "\n").Replace("\n", "\r\n");

    private static string? FindUp(string relative, bool file)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, relative);
            if (file ? File.Exists(candidate) : System.IO.Directory.Exists(candidate))
                return file ? dir.FullName : candidate;
        }
        return null;
    }
}

public static class TextCounting
{
    /// <summary>How often <paramref name="what"/> occurs in <paramref name="text"/> (ordinal, not overlapping): log lines, for waits.</summary>
    public static int Occurrences(this string text, string what)
    {
        var count = 0;
        for (var at = text.IndexOf(what, StringComparison.Ordinal); at >= 0; at = text.IndexOf(what, at + what.Length, StringComparison.Ordinal))
            count++;
        return count;
    }
}
