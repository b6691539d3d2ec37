using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Postern.Core.Tests.Authentication;

/// <summary>
/// Debian's python3-dkim (dkimpy), an independent DKIM/ARC implementation, run offline: keys come from a
/// table handed to its dnsfunc hook, never from DNS. /usr/bin/python3 is used because other pythons on a
/// machine may not see Debian's packages.
/// </summary>
internal static class PythonDkim
{
    public const string Python = "/usr/bin/python3";

    public const string SkipReason =
        "python3-dkim is not installed (/usr/bin/python3 -c 'import dkim' failed); install Debian's python3-dkim to run the independent-verifier check.";

    private static readonly Lazy<bool> IsAvailable = new(() =>
    {
        if (!File.Exists(Python))
            return false;
        try
        {
            return Run("import dkim", "", TimeSpan.FromSeconds(20)).ExitCode == 0;
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return false;
        }
    });

    public static bool Available => IsAvailable.Value;

    private const string Verifier = """
        import base64, json, sys
        import dkim

        data = json.load(sys.stdin)
        txt = {k.lower().rstrip('.'): v for k, v in data['dns'].items()}

        def dnsfunc(name, timeout=5):
            record = txt.get(name.decode().lower().rstrip('.'))
            return record.encode() if record else None

        out = {}
        for item in data['messages']:
            message = base64.b64decode(item['b64'])
            headers, _ = dkim.rfc822_parse(message)
            count = sum(1 for name, _ in headers if name.lower() == b'dkim-signature')
            dkim_results = [bool(dkim.DKIM(message).verify(idx=i, dnsfunc=dnsfunc)) for i in range(count)]
            cv, sets, comment = dkim.arc_verify(message, dnsfunc=dnsfunc)
            # dkimpy answers None when the newest seal validly says cv=fail: "the chain is terminated".
            out[item['id']] = {
                'dkim': dkim_results,
                'arc': 'terminated' if cv is None else cv.decode(),
                'comment': str(comment),
                'sets': [{'instance': s['instance'], 'as_valid': bool(s.get('as-valid')), 'ams_valid': bool(s.get('ams-valid'))} for s in sets],
            }
        json.dump(out, sys.stdout)
        """;

    /// <summary>Verifies each message's DKIM signatures (in header order) and its ARC chain.</summary>
    public static IReadOnlyDictionary<string, PythonVerdict> Verify(IReadOnlyDictionary<string, string> dns, IReadOnlyDictionary<string, byte[]> messages)
    {
        var input = JsonSerializer.Serialize(new
        {
            dns,
            messages = messages.Select(m => new { id = m.Key, b64 = Convert.ToBase64String(m.Value) }),
        });
        var (exitCode, stdout, stderr) = Run(Verifier, input, TimeSpan.FromSeconds(60));
        if (exitCode != 0)
            throw new InvalidOperationException($"python3-dkim exited with {exitCode}: {stderr}");
        using var json = JsonDocument.Parse(stdout);
        return json.RootElement.EnumerateObject().ToDictionary(
            p => p.Name,
            p => new PythonVerdict(
                p.Value.GetProperty("dkim").EnumerateArray().Select(e => e.GetBoolean()).ToArray(),
                p.Value.GetProperty("arc").GetString()!,
                p.Value.GetProperty("comment").GetString() ?? "",
                p.Value.GetProperty("sets").EnumerateArray().Select(e => new PythonArcSet(
                    e.GetProperty("instance").GetInt32(), e.GetProperty("as_valid").GetBoolean(), e.GetProperty("ams_valid").GetBoolean())).ToArray()));
    }

    private const string Signer = """
        import base64, json, sys
        import dkim

        data = json.load(sys.stdin)
        out = []
        for item in data['messages']:
            message = base64.b64decode(item['b64'])
            signature = dkim.sign(message, data['selector'].encode(), data['domain'].encode(), data['key'].encode(),
                                  canonicalize=tuple(c.encode() for c in item['c'].split('/')), length=item['length'],
                                  include_headers=[b'from', b'to', b'subject', b'date'])
            out.append(base64.b64encode(signature + message).decode())
        json.dump(out, sys.stdout)
        """;

    /// <summary>Each message DKIM-signed by python3-dkim with its canonicalization (c=) and, when asked, l=; the signed messages.</summary>
    public static IReadOnlyList<byte[]> Sign(string domain, string selector, string privateKeyPem, IEnumerable<(byte[] Message, string Canonicalization, bool Length)> messages)
    {
        var input = JsonSerializer.Serialize(new
        {
            domain,
            selector,
            key = privateKeyPem,
            messages = messages.Select(m => new { b64 = Convert.ToBase64String(m.Message), c = m.Canonicalization, length = m.Length }),
        });
        var (exitCode, stdout, stderr) = Run(Signer, input, TimeSpan.FromSeconds(60));
        if (exitCode != 0)
            throw new InvalidOperationException($"python3-dkim exited with {exitCode}: {stderr}");
        return JsonSerializer.Deserialize<string[]>(stdout)!.Select(Convert.FromBase64String).ToArray();
    }

    private static (int ExitCode, string Stdout, string Stderr) Run(string script, string stdin, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(Python)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8,
        };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(script);
        using var process = Process.Start(start) ?? throw new InvalidOperationException("python3 did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.StandardInput.Write(stdin);
        process.StandardInput.Close();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"python3-dkim did not finish within {timeout.TotalSeconds} s");
        }
        return (process.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult());
    }
}

/// <summary>python3-dkim's view of one message: each DKIM signature, the ARC chain result ("pass", "fail", "none", or
/// "terminated" when the newest seal validly says cv=fail), and each ARC set it checked, newest first.</summary>
internal sealed record PythonVerdict(IReadOnlyList<bool> Dkim, string Arc, string Comment, IReadOnlyList<PythonArcSet> Sets);

internal sealed record PythonArcSet(int Instance, bool SealValid, bool MessageSignatureValid);

/// <summary>A fact that needs python3-dkim; skipped, with the reason, when it is not installed.</summary>
public sealed class PythonDkimFactAttribute : FactAttribute
{
    public PythonDkimFactAttribute()
    {
        if (!PythonDkim.Available)
            Skip = PythonDkim.SkipReason;
    }
}
