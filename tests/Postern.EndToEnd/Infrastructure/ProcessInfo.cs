using System.Runtime.InteropServices;

namespace Postern.EndToEnd.Infrastructure;

/// <summary>Liveness and signals for processes the tests started but do not own a Process object for (daemons).</summary>
public static class ProcessInfo
{
    /// <summary>True while the process exists and is not a zombie waiting to be reaped.</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..].FirstOrDefault();
            return state is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return true;
        }
    }

    public static void Signal(int pid, int signal) => _ = kill(pid, signal);

    /// <summary>Resident memory from /proc/PID/status (VmRSS), in kB.</summary>
    public static long ResidentKilobytes(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0]);
        }
        return 0;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}
