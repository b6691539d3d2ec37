namespace Postern.Core.Authentication;

/// <summary>
/// A DKIM tag=value list (RFC 6376 §3.2), as used by DKIM-Signature, ARC headers and key records:
/// whitespace around names, values and semicolons is insignificant, a trailing ";" is allowed, and a
/// repeated tag makes the whole list invalid.
/// </summary>
internal static class DkimTagList
{
    /// <summary>The tags in order; null when the list is malformed (no "=", empty or bad tag name, duplicate tag).</summary>
    public static IReadOnlyDictionary<string, string>? TryParse(string text)
    {
        var tags = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in text.Split(';'))
        {
            if (string.IsNullOrWhiteSpace(item))
                continue;
            var eq = item.IndexOf('=');
            if (eq < 0)
                return null;
            var name = item[..eq].Trim();
            if (name.Length == 0 || !char.IsAsciiLetter(name[0]) || !name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
                return null;
            if (!tags.TryAdd(name, item[(eq + 1)..].Trim()))
                return null;
        }
        return tags;
    }

    /// <summary>The value with all folding whitespace removed, as base64 tags (b=, bh=, p=) need.</summary>
    public static string WithoutWhitespace(string value) => string.Concat(value.Where(c => !char.IsWhiteSpace(c)));
}
