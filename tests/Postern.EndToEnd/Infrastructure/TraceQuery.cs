using System.Text;
using System.Text.Json;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>One finding as `postern trace list --json` shows it.</summary>
public sealed record TraceFinding(string Engine, string Kind, string Reason, double Score, string? Subject);

/// <summary>One delivery attempt as `postern trace list --json` shows it.</summary>
public sealed record TraceAttemptEntry(string Server, string Outcome, string Reply);

/// <summary>One message as `postern trace list --json` shows it.</summary>
public sealed record TraceEntry(string QueueId, string State, string? Reason, string? Verdict, IReadOnlyList<TraceFinding> Findings, string Json)
{
    public string? TenantId { get; init; }
    public string Direction { get; init; } = "";
    public string MailFrom { get; init; } = "";
    public IReadOnlyList<string> Recipients { get; init; } = [];
    public string? Subject { get; init; }
    public long Size { get; init; }
    public IReadOnlyList<TraceAttemptEntry> Attempts { get; init; } = [];

    public override string ToString() => Json;
}

/// <summary>Reads the message trace through the command line, the way an operator does.</summary>
public static class TraceQuery
{
    public static async Task<IReadOnlyList<TraceEntry>> ListAsync(PosternProcess postern, int limit = 1000)
    {
        var result = (await postern.RunCliAsync("trace", "list", "--json", "--limit", limit.ToString())).EnsureSuccess();
        using var document = JsonDocument.Parse(result.StdOut);
        return document.RootElement.EnumerateArray().Select(Parse).ToList();
    }

    /// <summary>Polls the trace (written in batches, off the SMTP path) until <paramref name="queueId"/> is there and <paramref name="ready"/> holds.</summary>
    public static async Task<TraceEntry> WaitForAsync(PosternProcess postern, string queueId, Func<TraceEntry, bool>? ready = null,
        TimeSpan? timeout = null, Func<string>? diagnostics = null)
    {
        TraceEntry? found = null;
        await Poll.UntilAsync(async () =>
        {
            found = (await ListAsync(postern)).FirstOrDefault(e => e.QueueId == queueId);
            return found is not null && (ready is null || ready(found));
        }, timeout ?? TimeSpan.FromSeconds(30), $"trace record {queueId}", () => $"last seen: {found}\n{diagnostics?.Invoke()}");
        return found!;
    }

    private static TraceEntry Parse(JsonElement e)
    {
        static string? Str(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
        var findings = new List<TraceFinding>();
        if (e.TryGetProperty("findings", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var f in list.EnumerateArray())
            {
                findings.Add(new TraceFinding(Str(f, "engine") ?? "", Str(f, "kind") ?? "", Str(f, "reason") ?? "",
                    f.TryGetProperty("score", out var s) && s.ValueKind == JsonValueKind.Number ? s.GetDouble() : 0, Str(f, "subject")));
            }
        }
        var attempts = e.TryGetProperty("attempts", out var tried) && tried.ValueKind == JsonValueKind.Array
            ? tried.EnumerateArray().Select(a => new TraceAttemptEntry(Str(a, "server") ?? "", Str(a, "outcome") ?? "", Str(a, "reply") ?? "")).ToList()
            : [];
        var recipients = e.TryGetProperty("recipients", out var to) && to.ValueKind == JsonValueKind.Array
            ? to.EnumerateArray().Select(r => r.GetString() ?? "").ToList()
            : [];
        return new TraceEntry(Str(e, "queueId") ?? "", Str(e, "state") ?? "", Str(e, "reason"), Str(e, "verdict"), findings, e.GetRawText())
        {
            TenantId = Str(e, "tenantId"),
            Direction = Str(e, "direction") ?? "",
            MailFrom = Str(e, "mailFrom") ?? "",
            Recipients = recipients,
            Subject = Str(e, "subject"),
            Size = e.TryGetProperty("size", out var size) && size.ValueKind == JsonValueKind.Number ? size.GetInt64() : -1,
            Attempts = attempts,
        };
    }
}

/// <summary>The exact bytes smtp-sink stored for a message, for byte-level comparisons and signature checks.</summary>
public static class SinkContent
{
    /// <summary>
    /// The message as smtp-sink wrote it (LF line ends; smtp-sink drops CRs), without smtp-sink's own
    /// X- envelope lines, its Received header and the empty line it appends.
    /// </summary>
    public static byte[] ReadMessage(SinkMessage message)
    {
        var bytes = File.ReadAllBytes(message.FileName);
        var at = 0;
        string Line(int start)
        {
            var end = Array.IndexOf(bytes, (byte)'\n', start);
            return Encoding.Latin1.GetString(bytes, start, (end < 0 ? bytes.Length : end) - start);
        }
        int Next(int start)
        {
            var end = Array.IndexOf(bytes, (byte)'\n', start);
            return end < 0 ? bytes.Length : end + 1;
        }
        string[] sinkLines = ["X-Client-Addr:", "X-Client-Proto:", "X-Helo-Args:", "X-Mail-Args:", "X-Rcpt-Args:"];
        while (at < bytes.Length && sinkLines.Any(p => Line(at).StartsWith(p, StringComparison.Ordinal)))
            at = Next(at);
        if (Line(at).StartsWith("Received:", StringComparison.Ordinal) && Line(Next(at)).Contains("(smtp-sink) with"))
        {
            at = Next(at);
            while (at < bytes.Length && bytes[at] is (byte)' ' or (byte)'\t')
                at = Next(at);
        }
        var length = bytes.Length - at;
        if (length > 0 && bytes[^1] == '\n')
            length--; // the empty line smtp-sink writes after the message
        return bytes.AsSpan(at, length).ToArray();
    }

    /// <summary>The same with CRLF line ends, as signatures are computed over it.</summary>
    public static byte[] ReadMessageCrlf(SinkMessage message)
    {
        var lf = ReadMessage(message);
        var output = new List<byte>(lf.Length + lf.Length / 40);
        foreach (var b in lf)
        {
            if (b == '\n')
                output.Add((byte)'\r');
            output.Add(b);
        }
        return output.ToArray();
    }
}
