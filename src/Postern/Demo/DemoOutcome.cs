using System.Text.Json.Nodes;

namespace Postern.Demo;

/// <summary>Where one sample ended (a mailbox, the Internet, Postern's quarantine, refused) and the reasons Postern recorded.</summary>
internal sealed record DemoOutcome(DemoSample Sample, bool Final, string Where, IReadOnlyList<string> Why)
{
    public static DemoOutcome Of(DemoSample sample, string maildir, JsonArray trace, EngineProbe engines, IReadOnlyDictionary<string, string> tenantNames)
    {
        var passes = trace.Select(e => e!.AsObject())
            .Where(e => ((string?)e["subject"])?.Contains(sample.Subject, StringComparison.Ordinal) == true)
            .OrderBy(e => (string?)e["receivedAt"], StringComparer.Ordinal)
            .ToList();
        var why = new List<string>();
        foreach (var pass in passes)
        {
            var tenant = (string?)pass["tenantId"] is { } id ? tenantNames.GetValueOrDefault(id, id) : "?";
            var findings = (pass["findings"] as JsonArray ?? []).Select(f => $"{f!["engine"]}: {f["reason"]}").ToList();
            why.Add($"Postern, {pass["direction"]} for {tenant}: {pass["state"]}, verdict {pass["verdict"] ?? "none"}"
                + (findings.Count > 0 ? " — " + string.Join("; ", findings) : " — no findings")
                + ((string?)pass["state"] != "delivered" && (string?)pass["reason"] is { Length: > 0 } reason ? $" ({reason})" : ""));
        }
        if (sample.NeedsEngine is { } engine && !engines.Has(engine))
            why.Add($"{(engine == "clamav" ? "ClamAV" : "Rspamd")}: engine not installed, so this sample was not recognised");

        if (Arrived(maildir, sample))
        {
            var where = sample.Destination == "Internet" ? $"the Internet ({sample.To}), sent on by Exchange Online" : $"mailbox {sample.Destination}";
            return new(sample, true, where + (passes.Count == 1 ? ", through Postern once" : $", through Postern {passes.Count} times"), why);
        }
        var held = passes.FirstOrDefault(p => (string?)p["state"] is "quarantined" or "refused" or "failed");
        if (held is not null)
            return new(sample, true, (string?)held["state"] switch
            {
                "quarantined" => "held in Postern's quarantine (postern quarantine list)",
                "refused" => "refused by Postern",
                _ => "returned to the sender by Postern",
            }, why);
        return new(sample, false, "not arrived within 2 minutes", why);
    }

    private static bool Arrived(string maildir, DemoSample sample)
    {
        var folder = Path.Combine(maildir, sample.Destination == "Internet" ? "Internet" : sample.Destination.ToLowerInvariant(), "new");
        if (!Directory.Exists(folder))
            return false;
        foreach (var file in Directory.GetFiles(folder))
        {
            using var reader = new StreamReader(file);
            for (var line = reader.ReadLine(); !string.IsNullOrEmpty(line); line = reader.ReadLine())
                if (line.StartsWith("Subject:", StringComparison.OrdinalIgnoreCase) && line.Contains(sample.Subject, StringComparison.Ordinal))
                    return true;
        }
        return false;
    }
}
