using Microsoft.Extensions.Logging;

namespace Postern.M365.Client;

/// <summary>A logger for command-line use: one line per entry, "postern: …", at or above a level.</summary>
public sealed class TextWriterLogger(TextWriter output, LogLevel minimum = LogLevel.Warning) : ILogger
{
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= minimum && logLevel != LogLevel.None;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel))
            return;
        lock (output)
            output.WriteLine("postern: " + formatter(state, exception));
    }
}
