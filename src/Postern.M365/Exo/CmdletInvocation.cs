using System.Collections;
using System.Text;

namespace Postern.M365.Exo;

/// <summary>
/// One Exchange Online cmdlet call: the cmdlet name and its named parameters, in the order given.
/// Values are <see cref="string"/>, <see cref="bool"/>, <see cref="int"/>, a list of strings,
/// an <see cref="ExoHashtable"/> (the <c>@{Add=…;Remove=…}</c> form) or null (clear the property).
/// The same object feeds the PowerShell script, the plan and the REST call, so all three say the same.
/// </summary>
public sealed class CmdletInvocation
{
    private readonly List<KeyValuePair<string, object?>> _parameters;

    public CmdletInvocation(string cmdlet, IEnumerable<KeyValuePair<string, object?>> parameters)
    {
        Cmdlet = cmdlet;
        _parameters = [];
        foreach (var (name, value) in parameters)
        {
            if (_parameters.Any(p => p.Key.Equals(name, StringComparison.OrdinalIgnoreCase)))
                throw new ArgumentException($"{cmdlet}: parameter -{name} given twice", nameof(parameters));
            _parameters.Add(new(name, Normalize(value)));
        }
    }

    public CmdletInvocation(string cmdlet, params (string Name, object? Value)[] parameters)
        : this(cmdlet, parameters.Select(p => new KeyValuePair<string, object?>(p.Name, p.Value)))
    {
    }

    public string Cmdlet { get; }

    public IReadOnlyList<KeyValuePair<string, object?>> Parameters => _parameters;

    /// <summary>The object the call is about (its -Identity or -Name), for messages such as "New-TransportRule 'Postern Redirect': …".</summary>
    public string? Target =>
        (Get("Identity") ?? Get("Name")) switch
        {
            string s => s,
            IReadOnlyList<string> list => string.Join(", ", list),
            _ => null,
        } ?? (Get("Ids") is IReadOnlyList<string> ids ? string.Join(", ", ids) : null);

    /// <summary>Parameters whose values are secrets (the relay key): shown as "(hidden)" anywhere but the request itself.</summary>
    public static readonly IReadOnlySet<string> SecretParameters = new HashSet<string>(["SetHeaderValue"], StringComparer.OrdinalIgnoreCase);

    public bool Has(string name) => _parameters.Any(p => p.Key.Equals(name, StringComparison.OrdinalIgnoreCase));

    public object? Get(string name) =>
        _parameters.FirstOrDefault(p => p.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;

    /// <summary>A copy with one more parameter (or a replaced one).</summary>
    public CmdletInvocation With(string name, object? value) =>
        new(Cmdlet, _parameters.Where(p => !p.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Append(new(name, value)));

    /// <summary>The call as a person would read it, with secrets hidden. Not PowerShell to run (see <c>PowerShellScript</c>).</summary>
    public override string ToString()
    {
        var text = new StringBuilder(Cmdlet);
        foreach (var (name, value) in _parameters)
            text.Append(" -").Append(name).Append(' ').Append(SecretParameters.Contains(name) ? "(hidden)" : Display(value));
        return text.ToString();
    }

    /// <summary>A value as plain text for plans and reports.</summary>
    public static string Display(object? value) => value switch
    {
        null => "(none)",
        bool b => b ? "$true" : "$false",
        string s => s,
        int i => i.ToString(System.Globalization.CultureInfo.InvariantCulture),
        IReadOnlyList<string> list => list.Count == 0 ? "(none)" : string.Join(", ", list),
        ExoHashtable h => h.ToString(),
        _ => value.ToString() ?? "",
    };

    private static object? Normalize(object? value) => value switch
    {
        null or string or bool or int or ExoHashtable => value,
        IEnumerable<string> list => list.ToArray(),
        IEnumerable other when value is not string => other.Cast<object?>().Select(o => o?.ToString() ?? "").ToArray(),
        _ => throw new ArgumentException($"unsupported parameter value type {value.GetType().Name}"),
    };
}

/// <summary>The hashtable form of a multi-valued parameter: add and remove entries without replacing the list.</summary>
public sealed record ExoHashtable(IReadOnlyList<string> Add, IReadOnlyList<string> Remove)
{
    public static ExoHashtable Adding(IEnumerable<string> values) => new(values.ToArray(), []);

    public static ExoHashtable Removing(IEnumerable<string> values) => new([], values.ToArray());

    public override string ToString()
    {
        var parts = new List<string>();
        if (Add.Count > 0)
            parts.Add("Add=" + string.Join(",", Add));
        if (Remove.Count > 0)
            parts.Add("Remove=" + string.Join(",", Remove));
        return "@{" + string.Join("; ", parts) + "}";
    }
}
