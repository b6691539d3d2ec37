using System.Globalization;

namespace Postern.Core.Tenants;

/// <summary>
/// Normalises domain names to the one form Postern compares: lower-case ASCII, IDNs as A-labels
/// (punycode), no trailing dot. Anything else is not a domain Postern routes for.
/// </summary>
public static class DomainName
{
    private static readonly IdnMapping Idn = new() { AllowUnassigned = false, UseStd3AsciiRules = true };

    /// <summary>The normal form of <paramref name="value"/>, or null when it is not a plain host name.</summary>
    public static string? Normalize(string value)
    {
        if (value.Length is 0 or > 253 || value.EndsWith('.') || value.StartsWith('.') || value.StartsWith('['))
            return null;
        string ascii;
        try
        {
            ascii = Idn.GetAscii(value).ToLowerInvariant();
        }
        catch (ArgumentException)
        {
            return null;
        }
        var labels = ascii.Split('.');
        if (labels.Length < 2)
            return null;
        foreach (var label in labels)
        {
            if (label.Length is 0 or > 63 || label[0] == '-' || label[^1] == '-')
                return null;
            foreach (var c in label)
                if (!(c is >= 'a' and <= 'z' || c is >= '0' and <= '9' || c == '-'))
                    return null;
        }
        return ascii;
    }

    /// <summary>Like <see cref="Normalize"/>, but throws an error that names the bad value.</summary>
    public static string Parse(string value) =>
        Normalize(value) ?? throw new PosternException($"'{value}' is not a valid domain name");
}
