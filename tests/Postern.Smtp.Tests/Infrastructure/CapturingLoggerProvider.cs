using System.Collections.Concurrent;
using System.Collections.Immutable;
using Microsoft.Extensions.Logging;

namespace Postern.Smtp.Tests.Infrastructure;

internal sealed record LogEntry(string Category, LogLevel Level, EventId EventId, string Message, Exception? Exception, IReadOnlyList<KeyValuePair<string, object?>> State, IReadOnlyList<object> Scopes);

/// <summary>Keeps every log entry so tests can check what is (and is not) logged.</summary>
internal sealed class CapturingLoggerFactory : ILoggerFactory
{
    private readonly AsyncLocal<ImmutableStack<object>> _scopes = new();

    public ConcurrentQueue<LogEntry> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private sealed class Logger(CapturingLoggerFactory owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull
        {
            var previous = owner._scopes.Value ?? ImmutableStack<object>.Empty;
            owner._scopes.Value = previous.Push(state);
            return new Pop(() => owner._scopes.Value = previous);
        }

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state as IReadOnlyList<KeyValuePair<string, object?>> ?? [];
            owner.Entries.Enqueue(new LogEntry(category, logLevel, eventId, formatter(state, exception), exception, values.ToArray(), (owner._scopes.Value ?? ImmutableStack<object>.Empty).ToArray()));
        }
    }

    private sealed class Pop(Action action) : IDisposable
    {
        public void Dispose() => action();
    }
}
