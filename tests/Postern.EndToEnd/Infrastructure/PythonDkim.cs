using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>What python3-dkim said about a message.</summary>
public sealed record PythonDkimResult(string Verdict, string Detail)
{
    public override string ToString() => $"{Verdict}\n{Detail}";
}

/// <summary>
/// An independent DKIM and ARC verifier: Debian's python3-dkim (dkimpy), offline. Public keys are
/// given as a map from "selector._domainkey.domain" to the TXT record text and answered by a local
/// dnsfunc; any other name is "no record".
/// </summary>
public static partial class PythonDkim
{
    private const string Script = """
        import io, json, logging, sys
        import dkim

        mode, message_path, keys_path = sys.argv[1:4]
        message = open(message_path, "rb").read()
        keys = {k.rstrip(".").lower(): v for k, v in json.load(open(keys_path)).items()}
        asked = []

        def dnsfunc(name, timeout=5):
            if isinstance(name, bytes):
                name = name.decode("ascii")
            name = name.rstrip(".").lower()
            asked.append(name)
            value = keys.get(name)
            return value.encode("ascii") if value is not None else None

        log = io.StringIO()
        logger = logging.getLogger("dkim-check")
        logger.addHandler(logging.StreamHandler(log))
        logger.setLevel(logging.DEBUG)
        if mode == "dkim":
            ok = dkim.verify(message, logger=logger, dnsfunc=dnsfunc)
            print("pass" if ok else "fail")
        else:
            cv, results, comment = dkim.arc_verify(message, logger=logger, dnsfunc=dnsfunc)
            print(cv.decode() if isinstance(cv, bytes) else str(cv))
            print("comment:", comment)
            print("results:", results)
        print("asked:", asked)
        print(log.getvalue())
        """;

    /// <summary>dkim.verify over <paramref name="message"/> (CRLF line ends): "pass" or "fail".</summary>
    public static Task<PythonDkimResult> VerifyDkimAsync(TestDirectory directory, byte[] message, IReadOnlyDictionary<string, string> keys)
        => RunAsync(directory, "dkim", message, keys);

    /// <summary>dkim.arc_verify over <paramref name="message"/>: the chain validation status, "pass", "fail" or "none".</summary>
    public static Task<PythonDkimResult> VerifyArcAsync(TestDirectory directory, byte[] message, IReadOnlyDictionary<string, string> keys)
        => RunAsync(directory, "arc", message, keys);

    private const string NewestSetScript = """
        import json, logging, sys
        import dkim

        keys_path, paths = sys.argv[1], sys.argv[2:]
        keys = {k.rstrip(".").lower(): v for k, v in json.load(open(keys_path)).items()}

        def dnsfunc(name, timeout=5):
            if isinstance(name, bytes):
                name = name.decode("ascii")
            value = keys.get(name.rstrip(".").lower())
            return value.encode("ascii") if value is not None else None

        logging.disable(logging.CRITICAL)
        for path in paths:
            out = {"file": path}
            try:
                arc = dkim.ARC(open(path, "rb").read())
                newest, sets = arc.sorted_arc_headers()
                result = arc.verify_instance(sets, newest, dnsfunc=dnsfunc)
                out.update(instance=newest, ams=bool(result["ams-valid"]), seal=bool(result["as-valid"]))
            except Exception as e:
                out.update(error="%s: %s" % (type(e).__name__, e))
            print(json.dumps(out))
        """;

    /// <summary>
    /// For each message, whether python3-dkim validates its newest ARC set (the one Postern added): the
    /// ARC-Message-Signature over the message and the ARC-Seal over the chain. One python3 process for all.
    /// </summary>
    public static async Task<IReadOnlyList<(bool MessageSignature, bool Seal, string Detail)>> VerifyNewestArcSetsAsync(
        TestDirectory directory, IReadOnlyList<byte[]> messages, IReadOnlyDictionary<string, string> keys)
    {
        var script = directory.PathOf("arc_newest.py");
        var keysPath = directory.PathOf("arc-newest-keys.json");
        await File.WriteAllTextAsync(script, NewestSetScript);
        await File.WriteAllTextAsync(keysPath, JsonSerializer.Serialize(keys));
        var paths = new List<string>();
        for (var i = 0; i < messages.Count; i++)
        {
            paths.Add(directory.PathOf($"arc-newest-{i}.eml"));
            await File.WriteAllBytesAsync(paths[^1], messages[i]);
        }
        var result = await ExternalCommand.RunAsync("/usr/bin/python3", [script, keysPath, .. paths], TimeSpan.FromSeconds(120));
        if (result.ExitCode != 0)
            throw new InvalidOperationException($"python3-dkim check failed to run: {result}");
        var byFile = result.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonDocument.Parse(line).RootElement)
            .ToDictionary(e => e.GetProperty("file").GetString()!, e => e.Clone());
        return paths.Select(p =>
        {
            var e = byFile[p];
            return e.TryGetProperty("error", out var error)
                ? (false, false, error.GetString()!)
                : (e.GetProperty("ams").GetBoolean(), e.GetProperty("seal").GetBoolean(), $"instance {e.GetProperty("instance").GetInt32()}");
        }).ToList();
    }

    /// <summary>The TXT record text ("v=DKIM1; k=rsa; p=…") for an RSA private key in PEM form.</summary>
    public static string TxtRecordForPrivateKeyPem(string pem)
    {
        using var rsa = RSA.Create();
        rsa.ImportFromPem(pem);
        return $"v=DKIM1; k=rsa; p={Convert.ToBase64String(rsa.ExportSubjectPublicKeyInfo())}";
    }

    /// <summary>
    /// The name and text of the first zone-file TXT line in <paramref name="text"/>
    /// ("NAME. IN TXT "chunk" "chunk""), with the character-strings joined as DNS does.
    /// </summary>
    public static (string Name, string Value)? ParseTxtLine(string text)
    {
        var match = TxtLine().Match(text);
        if (!match.Success)
            return null;
        var value = string.Concat(match.Groups["strings"].Value.Split('"', StringSplitOptions.None).Where((_, i) => i % 2 == 1));
        return (match.Groups["name"].Value.TrimEnd('.'), value);
    }

    private static async Task<PythonDkimResult> RunAsync(TestDirectory directory, string mode, byte[] message, IReadOnlyDictionary<string, string> keys)
    {
        var id = Guid.NewGuid().ToString("N")[..8];
        var script = directory.PathOf("dkim_check.py");
        var messagePath = directory.PathOf($"dkim-{mode}-{id}.eml");
        var keysPath = directory.PathOf($"dkim-{mode}-{id}.json");
        await File.WriteAllTextAsync(script, Script);
        await File.WriteAllBytesAsync(messagePath, message);
        await File.WriteAllTextAsync(keysPath, JsonSerializer.Serialize(keys));
        var result = await ExternalCommand.RunAsync("/usr/bin/python3", [script, mode, messagePath, keysPath], TimeSpan.FromSeconds(60));
        if (result.ExitCode != 0)
            throw new InvalidOperationException($"python3-dkim check failed to run: {result}");
        var lines = result.StdOut.Split('\n');
        return new PythonDkimResult(lines[0].Trim(), result.StdOut + result.StdErr);
    }

    [GeneratedRegex(@"(?<name>\S+)\s+IN\s+TXT\s+(?<strings>(?:""[^""]*""\s*)+)")]
    private static partial Regex TxtLine();
}
