using System.Diagnostics;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>One message smtp-sink wrote: its envelope (from smtp-sink's X- lines) and the content as received.</summary>
public sealed class SinkMessage
{
    private static readonly string[] SinkLines = ["X-Client-Addr:", "X-Client-Proto:", "X-Helo-Args:", "X-Mail-Args:", "X-Rcpt-Args:"];

    public SinkMessage(string fileName, string dump)
    {
        FileName = fileName;
        var lines = dump.Split('\n').ToList();
        var i = 0;
        var recipients = new List<string>();
        for (; i < lines.Count && SinkLines.Any(p => lines[i].StartsWith(p, StringComparison.Ordinal)); i++)
        {
            if (lines[i].StartsWith("X-Mail-Args:", StringComparison.Ordinal))
                MailFromArgs = lines[i]["X-Mail-Args:".Length..].Trim();
            else if (lines[i].StartsWith("X-Rcpt-Args:", StringComparison.Ordinal))
                recipients.Add(lines[i]["X-Rcpt-Args:".Length..].Trim());
        }
        // smtp-sink's own Received header (folded over three lines) comes next.
        if (i < lines.Count && lines[i].StartsWith("Received:", StringComparison.Ordinal) && i + 1 < lines.Count && lines[i + 1].Contains("(smtp-sink) with"))
        {
            i++;
            while (i < lines.Count && lines[i].Length > 0 && lines[i][0] is ' ' or '\t')
                i++;
        }
        RecipientArgs = recipients;
        var content = string.Join('\n', lines.Skip(i));
        // The dump ends with one empty line after the message.
        Complete = content.EndsWith("\n\n", StringComparison.Ordinal);
        Mail = new MailText(Complete ? content[..^1] : content);
    }

    public string FileName { get; }
    public string MailFromArgs { get; } = "";
    public IReadOnlyList<string> RecipientArgs { get; }

    /// <summary>The message as the SMTP client sent it (LF line ends).</summary>
    public MailText Mail { get; }

    /// <summary>False for a transaction cut off mid-DATA (smtp-sink keeps the partial file).</summary>
    public bool Complete { get; }
}

/// <summary>
/// Postfix's smtp-sink on a loopback port, dumping each transaction to its own file (-d). Can be stopped
/// and started again on the same port (a next hop that is down, then back).
/// Only files smtp-sink has closed are reported, so a message is never read half-written.
/// </summary>
public sealed class SmtpSink : IAsyncDisposable
{
    private readonly Dictionary<string, SinkMessage> _closed = new(StringComparer.Ordinal);
    private readonly string _logPath;
    private Process? _process;

    private SmtpSink(string directory, int port, string name)
    {
        DumpDirectory = directory;
        Port = port;
        Name = name;
        _logPath = directory + ".log";
    }

    public string Name { get; }
    public int Port { get; }
    public string DumpDirectory { get; }
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>smtp-sink options added to the command line, e.g. ["-f", "RCPT"] to refuse every recipient with 5xx.</summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    /// <summary>Starts a sink on a free port (or <paramref name="port"/>).</summary>
    public static async Task<SmtpSink> StartAsync(TestDirectory directory, string name = "sink", int? port = null, IReadOnlyList<string>? extraArguments = null)
    {
        var dump = directory.Sub(name);
        File.SetUnixFileMode(dump, (UnixFileMode)0x1FF); // smtp-sink writes as nobody
        var sink = new SmtpSink(dump, port ?? FreePort.Next(), name) { ExtraArguments = extraArguments ?? [] };
        await sink.StartAsync();
        return sink;
    }

    /// <summary>A sink on a reserved port that is not started yet: a next hop that is down.</summary>
    public static SmtpSink CreateStopped(TestDirectory directory, string name = "sink")
    {
        var dump = directory.Sub(name);
        File.SetUnixFileMode(dump, (UnixFileMode)0x1FF);
        return new SmtpSink(dump, FreePort.Next(), name);
    }

    public async Task StartAsync()
    {
        if (IsRunning)
            return;
        var psi = new ProcessStartInfo("smtp-sink")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // -u: required as root; -d: one file per transaction, named by time plus a random suffix.
        foreach (var a in new[] { "-u", "nobody", "-h", $"{Name}.sink.test", "-d", Path.Combine(DumpDirectory, "%Y%m%d%H%M%S.") }
                     .Concat(ExtraArguments).Concat([$"127.0.0.1:{Port}", "1024"]))
            psi.ArgumentList.Add(a);
        var process = new Process { StartInfo = psi };
        var log = new StreamWriter(new FileStream(_logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.WriteLine(e.Data); };
        process.Exited += (_, _) => { lock (log) log.Dispose(); };
        process.EnableRaisingEvents = true;
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        await FreePort.WaitUntilAcceptingAsync(Port, TimeSpan.FromSeconds(15), $"smtp-sink '{Name}'",
            () => File.Exists(_logPath) ? File.ReadAllText(_logPath) : "");
    }

    /// <summary>Stops the sink; its port then refuses connections until <see cref="StartAsync()"/>.</summary>
    public async Task StopAsync()
    {
        var process = _process;
        if (process is null)
            return;
        if (!process.HasExited)
            process.Kill(entireProcessTree: true);
        await process.WaitForExitAsync();
        process.Dispose();
        _process = null;
    }

    /// <summary>Every transaction smtp-sink has finished writing (including ones cut off mid-DATA; see <see cref="SinkMessage.Complete"/>).</summary>
    public IReadOnlyList<SinkMessage> Messages()
    {
        lock (_closed)
        {
            var files = Directory.GetFiles(DumpDirectory);
            var open = OpenFiles();
            foreach (var file in files)
            {
                if (_closed.ContainsKey(file) || open.Contains(Path.GetFileName(file)))
                    continue;
                _closed[file] = new SinkMessage(file, File.ReadAllText(file));
            }
            return _closed.Values.OrderBy(m => m.FileName, StringComparer.Ordinal).ToList();
        }
    }

    /// <summary>Complete messages received so far.</summary>
    public int Count => Messages().Count(m => m.Complete);

    public async Task<IReadOnlyList<SinkMessage>> WaitForMessagesAsync(int count, TimeSpan timeout, Func<string>? diagnostics = null)
    {
        await Poll.UntilAsync(() => Count >= count, timeout, $"{count} message(s) at smtp-sink '{Name}' (port {Port})", diagnostics);
        return Messages().Where(m => m.Complete).ToList();
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    /// <summary>Names of the files the running smtp-sink still holds open (transactions in progress).</summary>
    private HashSet<string> OpenFiles()
    {
        var open = new HashSet<string>(StringComparer.Ordinal);
        var process = _process;
        if (process is null || process.HasExited)
            return open;
        try
        {
            foreach (var fd in Directory.GetFiles($"/proc/{process.Id}/fd"))
            {
                try
                {
                    var target = new FileInfo(fd).LinkTarget;
                    if (target is not null)
                        open.Add(Path.GetFileName(target));
                }
                catch (IOException)
                {
                    // The descriptor closed while we looked.
                }
            }
        }
        catch (DirectoryNotFoundException)
        {
        }
        return open;
    }
}
