namespace Postern.EndToEnd.Infrastructure;

/// <summary>
/// A scratch directory for one test, under the temp dir (scripts/test.sh points TMPDIR inside the repo).
/// World-traversable, because Postfix daemons and smtp-sink run as unprivileged users.
/// Set POSTERN_E2E_KEEP=1 to keep it for inspection.
/// </summary>
public sealed class TestDirectory : IDisposable
{
    private const UnixFileMode Traversable =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
        UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    public TestDirectory(string name)
    {
        var root = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "postern-e2e");
        Directory.CreateDirectory(root);
        File.SetUnixFileMode(root, Traversable);
        Path = System.IO.Path.Combine(root, $"{name}-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(Path);
        File.SetUnixFileMode(Path, Traversable);
    }

    public string Path { get; }

    /// <summary>A sub-directory, created (mode 755).</summary>
    public string Sub(string name)
    {
        var path = System.IO.Path.Combine(Path, name);
        Directory.CreateDirectory(path);
        File.SetUnixFileMode(path, Traversable);
        return path;
    }

    /// <summary>The path of a file in this directory (not created).</summary>
    public string PathOf(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        if (Environment.GetEnvironmentVariable("POSTERN_E2E_KEEP") == "1")
            return;
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A process that outlived its Dispose may still write here; the run's TMPDIR is removed by scripts/test.sh.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
