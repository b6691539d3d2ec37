using MimeKit;
using MimeKit.Tnef;

namespace Postern.Core.Scanning.Engines;

/// <summary>One leaf of a message's MIME tree, as the engines see it.</summary>
/// <param name="Part">The leaf part.</param>
/// <param name="IsBodyText">A text part shown as the message body (no file name, not an attachment).</param>
/// <param name="Location">Where it sits, for reasons ("part 3", "forwarded message > part 2", "winmail.dat > …").</param>
public sealed record MessageLeaf(MimePart Part, bool IsBodyText, string Location)
{
    /// <summary>The file name the recipient sees, or a description of the unnamed part.</summary>
    public string DisplayName => string.IsNullOrWhiteSpace(Part.FileName)
        ? $"(unnamed {Part.ContentType.MimeType} {Location})"
        : Part.FileName.Trim();
}

/// <summary>
/// Walks a message's MIME tree to its leaves, including attached messages (forwarded mail carries
/// attachments too) and TNEF <c>winmail.dat</c> parts (Outlook hides attachments in them), with a
/// depth limit so a message nested in itself a thousand times cannot exhaust the stack.
/// </summary>
public static class MessageParts
{
    /// <summary>How deep attached messages and multiparts are followed.</summary>
    public const int MaxDepth = 16;

    public static IEnumerable<MessageLeaf> Enumerate(MimeMessage message)
    {
        var counter = 0;
        return message.Body is null ? [] : Walk(message.Body, 0, "", () => ++counter);
    }

    private static IEnumerable<MessageLeaf> Walk(MimeEntity entity, int depth, string prefix, Func<int> next)
    {
        if (depth > MaxDepth)
            yield break;
        switch (entity)
        {
            case Multipart multipart:
                foreach (var child in multipart)
                    foreach (var leaf in Walk(child, depth + 1, prefix, next))
                        yield return leaf;
                break;
            case MimeKit.MessagePart { Message.Body: { } body } attached:
                var name = attached.ContentDisposition?.FileName ?? "attached message";
                foreach (var leaf in Walk(body, depth + 1, $"{prefix}{name} > ", next))
                    yield return leaf;
                break;
            case TnefPart tnef:
                var location = $"{prefix}part {next()}";
                yield return new MessageLeaf(tnef, false, location);
                foreach (var leaf in ExtractTnef(tnef))
                    foreach (var inner in Walk(leaf, depth + 1, $"{prefix}{tnef.FileName ?? "winmail.dat"} > ", next))
                        yield return inner;
                break;
            case MimePart part:
                var isBody = part is TextPart && !part.IsAttachment && string.IsNullOrEmpty(part.FileName);
                yield return new MessageLeaf(part, isBody, $"{prefix}part {next()}");
                break;
        }
    }

    private static IReadOnlyList<MimeEntity> ExtractTnef(TnefPart tnef)
    {
        try
        {
            return tnef.ExtractAttachments().ToList();
        }
        catch (Exception e) when (e is TnefException or FormatException or IOException or ArgumentException or InvalidOperationException)
        {
            // A broken winmail.dat is still inspected as a part; only its contents are lost.
            return [];
        }
    }
}
