using System.Security.Cryptography;

namespace Postern.Core.Spool;

/// <summary>
/// Queue ids: 13 characters of Crockford base32 holding the arrival time in milliseconds
/// (so ids sort by arrival) and 20 random bits. Short enough for log lines and SMTP replies.
/// </summary>
public static class QueueId
{
    private const string Crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    private const int Length = 13;

    public static string New()
    {
        var ms = (ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var value = (ms << 20) | (uint)RandomNumberGenerator.GetInt32(1 << 20);
        Span<char> text = stackalloc char[Length];
        for (var i = Length - 1; i >= 0; i--)
        {
            text[i] = Crockford[(int)(value & 31)];
            value >>= 5;
        }
        return new string(text);
    }

    public static bool IsValid(string text) =>
        text.Length == Length && text.All(c => Crockford.Contains(c));
}
