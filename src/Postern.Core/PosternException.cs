namespace Postern.Core;

/// <summary>An error the user can act on; its message is shown as-is (one line, naming the bad value).</summary>
public sealed class PosternException(string message) : Exception(message);
