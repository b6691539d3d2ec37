using System.Text;
using Postern.Core.Scanning;
using Postern.Core.Scanning.Engines;
using Postern.Core.Tests.Authentication;

namespace Postern.Core.Tests.Scanning;

/// <summary>
/// Every message of the shared MIME corpora (stalwart mail-parser's malformed, RFC and third-party
/// samples; MimeKit's test messages, mboxes and partials), as stored and converted to CRLF, through
/// every built-in engine: none may throw or report itself unavailable (which is how an engine
/// reports its own failure).
/// </summary>
public sealed class CorpusTests
{
    public static TheoryData<string> Corpora() => new(["stalwart-mail-parser", "mimekit-testdata"]);

    [Theory]
    [MemberData(nameof(Corpora))]
    public async Task Built_in_engines_scan_every_corpus_message(string corpus)
    {
        IScanEngine[] engines = [new AttachmentTypeEngine(), new UrlEngine(), new ImpersonationEngine()];
        var files = Directory.EnumerateFiles(ConformanceData.PathOf(corpus), "*", SearchOption.AllDirectories)
            .Where(f => !Path.GetFileName(f).StartsWith("COPYING", StringComparison.Ordinal) && !f.EndsWith("LICENSE", StringComparison.Ordinal)
                && !f.EndsWith(".json", StringComparison.Ordinal) && !f.EndsWith(".pem", StringComparison.Ordinal) && !f.EndsWith(".pub", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .ToList();
        Assert.True(files.Count > 30, $"only {files.Count} files in {corpus}");

        var scanned = 0;
        var failures = new List<string>();
        foreach (var file in files)
        {
            var stored = await File.ReadAllBytesAsync(file);
            foreach (var (form, raw) in new[] { ("as stored", stored), ("CRLF", ToCrlf(stored)) })
            {
                ScanContext context;
                try
                {
                    context = ScanContexts.ForRaw(raw, tenantDomains: ScanContexts.ContosoDomains, vips: ScanContexts.ContosoVips);
                }
                catch (FormatException)
                {
                    continue; // not a message MimeKit can parse at all (the relay would not get this far either)
                }
                foreach (var engine in engines)
                {
                    try
                    {
                        var findings = await engine.ScanAsync(context, CancellationToken.None);
                        foreach (var f in findings.Where(f => f.Kind == FindingKinds.EngineUnavailable))
                            failures.Add($"{Relative(file)} ({form}) {engine.Name}: {f.Reason}");
                    }
                    catch (Exception e)
                    {
                        failures.Add($"{Relative(file)} ({form}) {engine.Name} threw {e.GetType().Name}: {e.Message}");
                    }
                }
                scanned++;
            }
        }
        Assert.True(failures.Count == 0, string.Join(Environment.NewLine, failures));
        Assert.True(scanned > files.Count, $"only {scanned} of {files.Count * 2} forms could be parsed");
    }

    private static byte[] ToCrlf(byte[] data)
    {
        var text = Encoding.Latin1.GetString(data).Replace("\r\n", "\n").Replace("\n", "\r\n");
        return Encoding.Latin1.GetBytes(text);
    }

    private static string Relative(string path) => Path.GetRelativePath(ConformanceData.Directory, path);
}
