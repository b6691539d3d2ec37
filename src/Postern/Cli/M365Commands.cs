using System.CommandLine;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Postern.Core;
using Postern.Core.Tenants;
using Postern.M365.Blueprints;
using Postern.M365.Client;
using Postern.M365.Credentials;
using Postern.M365.Deployment;
using Postern.M365.Exo;
using Postern.M365.Reconcile;
using Postern.M365.Rendering;
using Postern.M365.Simulation;

namespace Postern.Cli;

/// <summary>
/// `postern m365 script|connect|plan|apply|verify|activate|deactivate|remove`: Postern's connectors,
/// rules and settings in a tenant's Exchange Online (docs/m365.md).
/// </summary>
public static class M365Commands
{
    /// <summary>Environment variable that may hold the relay key (never a command-line argument: those show in process lists).</summary>
    public const string RelayKeyVariable = "POSTERN_RELAY_KEY";

    /// <summary>Exit code of verify when it ran but found something not as it should be.</summary>
    public const int VerifyProblems = 2;

    public static Command Create(CliContext cli)
    {
        var m365 = new Command("m365", "Provision, check and undo Postern's connectors and rules in a tenant's Exchange Online");
        m365.Add(Script(cli));
        m365.Add(Connect(cli));
        m365.Add(Plan(cli));
        m365.Add(Apply(cli));
        m365.Add(Verify(cli));
        m365.Add(Simulate(cli));
        m365.Add(Switch(cli, activate: true));
        m365.Add(Switch(cli, activate: false));
        m365.Add(Remove(cli));
        return m365;
    }

    private static Command Script(CliContext cli)
    {
        var o = new BlueprintOptions();
        var output = new Option<FileInfo?>("--output") { Description = "Write the script to this file (mode 600 when it holds the relay key) instead of standard output" };
        var command = new Command("script", "Print a PowerShell script that provisions the tenant (run it after Connect-ExchangeOnline; safe to re-run)");
        o.AddTo(command, relayKey: true);
        command.Add(output);
        command.SetAction(cli.Run(result =>
        {
            var context = Context.Load(cli, result, o);
            var blueprint = context.Blueprint(context.RelayKey(o));
            var script = PowerShellScript.Render(blueprint);
            foreach (var warning in blueprint.Warnings)
                cli.Error.WriteLine("warning: " + warning);
            if (result.GetValue(output) is { } file)
            {
                var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
                if (blueprint.HasRelayKey && !OperatingSystem.IsWindows())
                    options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                using (var writer = new StreamWriter(new FileStream(file.FullName, options)))
                    writer.Write(script);
                cli.Out.WriteLine($"Wrote {file.FullName} ({blueprint.Items.Count} items{(blueprint.HasRelayKey ? "; it holds the relay key, keep it secret" : "; it asks for the relay key when run")}).");
            }
            else
            {
                cli.Out.Write(script);
            }
            return 0;
        }));
        return command;
    }

    private static Command Connect(CliContext cli)
    {
        var tenant = new Argument<string>("TENANT") { Description = "Tenant name or id" };
        var appId = new Option<string>("--app-id") { Description = "The Entra app (client) id, with Exchange.ManageAsApp consented in the tenant", Required = true };
        var certificate = new Option<FileInfo>("--certificate") { Description = "The app's certificate credential with its private key (PFX)", Required = true };
        var password = new Option<FileInfo?>("--certificate-password-file") { Description = "A file holding the PFX password (none if not given)" };
        var organization = new Option<string?>("--organization") { Description = "The tenant's initial domain, e.g. contoso.onmicrosoft.com" };
        var c = new ConnectionOptions();
        var skip = new Option<bool>("--skip-check") { Description = "Store the credentials without trying them" };
        var cloud = new Option<string?>("--cloud") { Description = "The tenant's Microsoft cloud: commercial (default), gcc-high, dod or china; sets the endpoint, sign-in authority and token scope" };
        var tokenScope = new Option<string?>("--token-scope") { Description = "Ask the token for this scope instead of the cloud's (e.g. https://outlook.office365.us/.default)" };
        var command = new Command("connect", "Store how Postern reaches the tenant's Exchange Online (the private key encrypted at rest) and try it")
        {
            tenant, appId, certificate, password, organization, skip, cloud, tokenScope,
        };
        c.AddTo(command);
        command.SetAction(cli.Run(async (result, cancellationToken) =>
        {
            var t = cli.Tenants(result).GetTenant(result.GetValue(tenant)!);
            var app = result.GetValue(appId)!.Trim();
            if (!Guid.TryParse(app, out _))
                throw new PosternException($"--app-id '{app}' is not a GUID");
            var org = result.GetValue(organization)?.Trim().ToLowerInvariant();
            if (org is not null && DomainName.Normalize(org) is null)
                throw new PosternException($"--organization '{org}' is not a domain name");
            if (org is not null && !org.EndsWith(".onmicrosoft.com", StringComparison.Ordinal))
                cli.Error.WriteLine($"warning: --organization '{org}' is not an .onmicrosoft.com domain; Exchange Online expects the tenant's initial domain");
            string? secret = null;
            if (result.GetValue(password) is { } passwordFile)
                secret = ReadSecretFile(passwordFile.FullName, "--certificate-password-file").TrimEnd('\r', '\n');
            var store = new M365Store(result.GetValue(cli.DataDir)!);
            var file = result.GetValue(certificate)!;
            var chosenCloud = result.GetValue(cloud) is { } cloudName ? ExoCloud.Parse(cloudName) : null;
            var scope = result.GetValue(tokenScope)?.Trim();
            if (scope is not null && (!Uri.TryCreate(scope, UriKind.Absolute, out var scopeUri) || scopeUri.Scheme != "https" || !scope.EndsWith("/.default", StringComparison.Ordinal)))
                throw new PosternException($"--token-scope '{scope}' is not an https resource ending in /.default");
            var record = store.Connect(t, app, file.FullName, secret, org, c.Endpoint(result), c.Authority(result), c.TrustedPem(result), chosenCloud, scope);
            using var connection = new ConnectionScope(store.Connection(record));
            var certificateText = $"certificate {record.CertificateSubject} (thumbprint {record.CertificateThumbprint}, valid until {record.CertificateNotAfter:yyyy-MM-dd})";
            if (!result.GetValue(skip))
            {
                using var client = new ExoRestClient(connection.Value, c.Logger(cli, result));
                IReadOnlyList<ExoObject> domains;
                try
                {
                    domains = await client.InvokeAsync(new CmdletInvocation("Get-AcceptedDomain"), cancellationToken);
                }
                catch (ExoCommandException ex)
                {
                    throw new PosternException($"cannot reach tenant '{t.Name}' with app {app} and the {certificateText}: {ex.Message}; nothing was stored");
                }
                cli.Out.WriteLine($"Reached Exchange Online of tenant '{t.Name}': {domains.Count} accepted domain{(domains.Count == 1 ? "" : "s")} ({string.Join(", ", domains.Select(d => d.GetString("DomainName") ?? d.Name))}).");
            }
            store.Save(record);
            cli.Out.WriteLine($"Stored the Exchange Online credentials of tenant '{t.Name}': app {app}, {certificateText}.");
            cli.Out.WriteLine($"The private key is encrypted (AES-256-GCM) in {store.PathOf(t.Id)} with the key in {store.Protector.KeyPath}.");
            if (record.CertificateNotAfter < DateTimeOffset.UtcNow.AddDays(30))
                cli.Error.WriteLine($"warning: the certificate expires on {record.CertificateNotAfter:yyyy-MM-dd}; renew it on the app and connect again");
            cli.Out.WriteLine($"Next: postern m365 plan {t.Name}");
            return 0;
        }));
        return command;
    }

    private static Command Plan(CliContext cli)
    {
        var o = new BlueprintOptions();
        var c = new ConnectionOptions();
        var json = new Option<bool>("--json") { Description = "Machine-readable output" };
        var command = new Command("plan", "Show what apply would change: per item create / update (which parameters) / enable / nothing, and warnings") { json };
        o.AddTo(command, relayKey: true);
        c.AddTo(command);
        command.SetAction(cli.Run(async (result, cancellationToken) =>
        {
            var context = Context.Load(cli, result, o);
            var blueprint = context.Blueprint(context.RelayKey(o));
            var plan = await WithExchange(cli, result, c, context, exchange =>
                new Provisioner(exchange).PlanAsync(blueprint, context.Record.Activated, cancellationToken));
            if (result.GetValue(json))
                cli.Out.WriteLine(Reports.PlanJson(plan));
            else
                Reports.WritePlan(cli.Out, plan);
            return 0;
        }));
        return command;
    }

    private static Command Apply(CliContext cli)
    {
        var o = new BlueprintOptions();
        var c = new ConnectionOptions();
        var command = new Command("apply", "Make the plan's changes in order, saying what it does; stops at the first error; safe to re-run");
        o.AddTo(command, relayKey: true);
        c.AddTo(command);
        command.SetAction(cli.Run(async (result, cancellationToken) =>
        {
            var context = Context.Load(cli, result, o);
            var blueprint = context.Blueprint(context.RelayKey(o));
            var name = context.Tenant.Name;
            return await WithExchange(cli, result, c, context, async exchange =>
            {
                var state = await TenantState.ReadAsync(exchange, cancellationToken);
                var plan = Planner.Create(blueprint, state, context.Record.Activated);
                var steps = plan.Changes.ToArray();
                var needKey = steps.Where(s => s.NeedsRelayKey).Select(s => s.Title).ToArray();
                if (needKey.Length > 0)
                    throw new PosternException($"{string.Join(", ", needKey)} must carry the relay key of tenant '{name}': give it with --relay-key-file FILE or {RelayKeyVariable}; nothing was changed");
                foreach (var warning in plan.Warnings)
                    cli.Error.WriteLine("warning: " + warning);
                // Remember the profile and scope first: verify and remove must know them even if apply stops half-way.
                context.Store.Save(context.Record with
                {
                    Profile = ProvisioningProfiles.Format(blueprint.Profile),
                    ScopeRecipients = blueprint.Scope.Recipients,
                    ScopeSenders = blueprint.Scope.Senders,
                    AppliedAt = DateTimeOffset.UtcNow,
                });
                if (steps.Length == 0)
                {
                    cli.Out.WriteLine($"Nothing to change: {blueprint.Describe()} is as the blueprint says.");
                }
                else
                {
                    cli.Out.WriteLine($"Applying {steps.Length} change{(steps.Length == 1 ? "" : "s")} to {blueprint.Describe()}:");
                    var run = await new Provisioner(exchange).RunChangesAsync(blueprint, context.Record.Activated, steps, cli.Out, cancellationToken);
                    // Verify shows what Exchange Online said about an item (a connector it created disabled, and why).
                    var warned = new Dictionary<string, string>(context.Store.Find(context.Record.TenantId)?.ExchangeWarnings ?? new Dictionary<string, string>(), StringComparer.OrdinalIgnoreCase);
                    foreach (var step in run.Done.Append(run.Failed).OfType<PlanStep>())
                        warned.Remove(step.Title);
                    foreach (var group in run.Warnings.GroupBy(w => w.Step.Title, StringComparer.OrdinalIgnoreCase))
                        warned[group.Key] = string.Join(" ", group.Select(w => w.Warning).Distinct());
                    context.Store.Save((context.Store.Find(context.Record.TenantId) ?? context.Record) with { ExchangeWarnings = warned });
                    if (!run.Succeeded)
                    {
                        Reports.WriteResult(cli.Out, run, $"postern m365 apply {name}");
                        throw new PosternException($"apply stopped at {run.Failed!.Title}: {run.Error}");
                    }
                    cli.Out.WriteLine($"Done: {steps.Length} change{(steps.Length == 1 ? "" : "s")} made.");
                }
                foreach (var advice in blueprint.Advice)
                    cli.Out.WriteLine("Advice: " + advice);
                if (!context.Record.Activated)
                    cli.Out.WriteLine($"Postern's rules stay disabled until 'postern m365 activate {name}'.");
                return 0;
            });
        }));
        return command;
    }

    private static Command Simulate(CliContext cli)
    {
        var o = new BlueprintOptions();
        var c = new ConnectionOptions();
        var from = new Option<string>("--from") { Description = "The envelope sender", Required = true };
        var to = new Option<string[]>("--to") { Description = "A recipient (repeat for more)", Required = true, AllowMultipleArgumentsPerToken = true };
        var header = new Option<string[]>("--header") { Description = "A header field the message carries, NAME:VALUE (repeat for more)" };
        var senderIp = new Option<string?>("--sender-ip") { Description = "The address of the last hop before Exchange Online (default: an Internet address)" };
        var scl = new Option<int?>("--scl") { Description = "The message's spam confidence level, -1 to 9" };
        var external = new Option<bool>("--from-internet") { Description = "The sender is not a signed-in user of the tenant even when its domain is the tenant's (a spoof)" };
        var command = new Command("simulate",
            $"From the tenant's actual rules and connectors: the path a message would take, each rule and why it does or does not apply, where it goes, and whether it would loop (exit {VerifyProblems} when it would loop or skip Postern)")
        {
            from, to, header, senderIp, scl, external,
        };
        o.AddTo(command, relayKey: false);
        c.AddTo(command);
        command.SetAction(cli.Run(async (result, cancellationToken) =>
        {
            var context = Context.Load(cli, result, o);
            var blueprint = context.Blueprint(null);
            var sender = result.GetValue(from)!.Trim();
            if (!sender.Contains('@'))
                throw new PosternException($"--from '{sender}' is not an email address");
            var recipients = result.GetValue(to)!.Select(r => r.Trim()).ToArray();
            if (recipients.FirstOrDefault(r => !r.Contains('@')) is { } bad)
                throw new PosternException($"--to '{bad}' is not an email address");
            var headers = new List<KeyValuePair<string, string>>();
            foreach (var field in result.GetValue(header) ?? [])
            {
                var colon = field.IndexOf(':');
                if (colon <= 0)
                    throw new PosternException($"--header '{field}' is not NAME:VALUE");
                headers.Add(new(field[..colon].Trim(), field[(colon + 1)..].Trim()));
            }
            var ipText = result.GetValue(senderIp);
            var ip = ipText is null ? System.Net.IPAddress.Parse("203.0.113.50") : PathSimulator.ParseIp(ipText) ?? throw new PosternException($"--sender-ip '{ipText}' is not an IP address");
            var level = result.GetValue(scl);
            if (level is < -1 or > 9)
                throw new PosternException($"--scl '{level}' is not -1 to 9");
            var state = await WithExchange(cli, result, c, context, exchange => TenantState.ReadAsync(exchange, cancellationToken));
            var domains = state.AcceptedDomains.Select(d => (d.GetString("DomainName") ?? d.Name).ToLowerInvariant()).ToHashSet();
            var message = new SimulatedMessage
            {
                From = sender,
                To = recipients,
                Headers = headers,
                SenderIp = ip,
                Scl = level,
                Authenticated = !result.GetValue(external) && domains.Contains(sender[(sender.LastIndexOf('@') + 1)..].ToLowerInvariant()),
            };
            var simulation = PathSimulator.Simulate(state, blueprint, message);
            PathSimulator.Write(cli.Out, simulation);
            return simulation.Loops || simulation.PosternPasses == 0 ? VerifyProblems : 0;
        }));
        return command;
    }

    private static Command Verify(CliContext cli)
    {
        var o = new BlueprintOptions();
        var c = new ConnectionOptions();
        var json = new Option<bool>("--json") { Description = "Machine-readable output" };
        var command = new Command("verify",
            $"Check every item (present / missing / disabled / drifted) and the conflicts around them; exit 0 only when all is as it should be, {VerifyProblems} when not")
        {
            json,
        };
        o.AddTo(command, relayKey: false);
        c.AddTo(command);
        command.SetAction(cli.Run(async (result, cancellationToken) =>
        {
            var context = Context.Load(cli, result, o);
            var blueprint = context.Blueprint(null);
            var report = await WithExchange(cli, result, c, context, exchange => new Provisioner(exchange).VerifyAsync(blueprint, cancellationToken, context.Record.ExchangeWarnings));
            if (result.GetValue(json))
                cli.Out.WriteLine(Reports.VerifyJson(report));
            else
                Reports.WriteVerify(cli.Out, report);
            return report.Ok ? 0 : VerifyProblems;
        }));
        return command;
    }

    private static Command Switch(CliContext cli, bool activate)
    {
        var o = new BlueprintOptions();
        var c = new ConnectionOptions();
        var command = new Command(activate ? "activate" : "deactivate", activate
            ? "Enable Postern's rules (Loop Check first): mail starts to flow through Postern"
            : "Disable Postern's rules (routing rules first): mail stops flowing through Postern");
        o.AddTo(command, relayKey: false);
        c.AddTo(command);
        command.SetAction(cli.Run(async (result, cancellationToken) =>
        {
            var context = Context.Load(cli, result, o);
            var blueprint = context.Blueprint(null);
            var name = context.Tenant.Name;
            var run = await WithExchange(cli, result, c, context, exchange => activate
                ? new Provisioner(exchange).ActivateAsync(blueprint, cli.Out, cancellationToken)
                : new Provisioner(exchange).DeactivateAsync(blueprint, cli.Out, cancellationToken));
            if (!run.Succeeded)
            {
                Reports.WriteResult(cli.Out, run, $"postern m365 {(activate ? "activate" : "deactivate")} {name}");
                throw new PosternException($"{(activate ? "activate" : "deactivate")} stopped at {run.Failed!.Title}: {run.Error}");
            }
            context.Store.Save(context.Record with { Activated = activate });
            cli.Out.WriteLine(activate
                ? $"Postern's rules are enabled in tenant '{name}'{(run.Done.Count == 0 ? " (they were already)" : "")}; Exchange Online may take up to 30 minutes to apply them."
                : $"Postern's rules are disabled in tenant '{name}'{(run.Done.Count == 0 ? " (they were already)" : "")}; mail no longer goes through Postern.");
            return 0;
        }));
        return command;
    }

    private static Command Remove(CliContext cli)
    {
        var o = new BlueprintOptions();
        var c = new ConnectionOptions();
        var command = new Command("remove", "Delete Postern's rules, connectors, sealer, allow-list addresses and spoof entries, and nothing else");
        o.AddTo(command, relayKey: false);
        c.AddTo(command);
        command.SetAction(cli.Run(async (result, cancellationToken) =>
        {
            var context = Context.Load(cli, result, o);
            var blueprint = context.Blueprint(null);
            var name = context.Tenant.Name;
            var run = await WithExchange(cli, result, c, context, exchange => new Provisioner(exchange).RemoveAsync(blueprint, cli.Out, cancellationToken));
            if (!run.Succeeded)
            {
                Reports.WriteResult(cli.Out, run, $"postern m365 remove {name}");
                throw new PosternException($"remove stopped at {run.Failed!.Title}: {run.Error}");
            }
            context.Store.Save(context.Record with { Activated = false, Profile = null, ScopeRecipients = [], ScopeSenders = [], AppliedAt = null });
            cli.Out.WriteLine(run.Done.Count == 0
                ? $"Tenant '{name}' has none of Postern's items."
                : $"Removed Postern's {run.Done.Count} item{(run.Done.Count == 1 ? "" : "s")} from tenant '{name}'. The remote domain Default keeps its settings; the stored credentials stay (delete {context.Store.PathOf(context.Tenant.Id)} to forget them).");
            return 0;
        }));
        return command;
    }

    /// <summary>Runs <paramref name="body"/> with a client for the tenant; Exchange's failures become one-line errors.</summary>
    private static async Task<T> WithExchange<T>(CliContext cli, ParseResult result, ConnectionOptions c, Context context, Func<IExchangeOnline, Task<T>> body)
    {
        using var connection = new ConnectionScope(context.Store.Connection(context.Record, c.Endpoint(result), c.Authority(result), c.Trusted(result)));
        using var client = new ExoRestClient(connection.Value, c.Logger(cli, result));
        try
        {
            return await body(client);
        }
        catch (ExoCommandException ex)
        {
            throw new PosternException(ex.Message);
        }
    }

    private static string ReadSecretFile(string path, string option)
    {
        try
        {
            return path == "-" ? Console.In.ReadToEnd() : File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new PosternException($"{option} '{path}' cannot be read: {ex.Message}");
        }
    }

    /// <summary>What the commands that build a blueprint share: tenant, domains, deployment, stored record.</summary>
    private sealed class Context
    {
        private readonly ParseResult _result;
        private readonly BlueprintOptions _options;

        private Context(ParseResult result, BlueprintOptions options, Tenant tenant, IReadOnlyList<string> domains, M365Deployment deployment, M365Store store, M365TenantRecord? record)
        {
            _result = result;
            _options = options;
            Tenant = tenant;
            Domains = domains;
            Deployment = deployment;
            Store = store;
            StoredRecord = record;
        }

        public Tenant Tenant { get; }

        public IReadOnlyList<string> Domains { get; }

        public M365Deployment Deployment { get; }

        public M365Store Store { get; }

        public M365TenantRecord? StoredRecord { get; }

        /// <summary>The connection record; commands that talk to Exchange need one.</summary>
        public M365TenantRecord Record => StoredRecord ?? Store.Get(Tenant);

        public static Context Load(CliContext cli, ParseResult result, BlueprintOptions options)
        {
            var tenants = cli.Tenants(result);
            var tenant = tenants.GetTenant(result.GetValue(options.Tenant)!);
            var domains = tenants.ListDomains(tenant).Select(d => d.Domain).ToArray();
            var store = new M365Store(result.GetValue(cli.DataDir)!);
            return new Context(result, options, tenant, domains, LoadDeployment(result.GetValue(options.Config)), store, store.Find(tenant.Id));
        }

        public Blueprint Blueprint(string? relayKey)
        {
            var profile = _result.GetValue(_options.Profile) is { } p ? ProvisioningProfiles.Parse(p)
                : StoredRecord?.Profile is { } stored ? ProvisioningProfiles.Parse(stored)
                : ProvisioningProfile.Integrated;
            OutboundMode? outbound = _result.GetValue(_options.Outbound) is { } mode ? OutboundModes.Parse(mode) : null;
            if (_result.GetValue(_options.Scope) is not null && _result.GetValue(_options.AllUsers))
                throw new PosternException("--scope and --all-users exclude each other");
            var scope = _result.GetValue(_options.AllUsers) ? ProvisioningScope.AllUsers
                : _result.GetValue(_options.Scope) is { } file ? ProvisioningScope.Load(file.FullName)
                : StoredRecord?.Scope ?? ProvisioningScope.AllUsers;
            return BlueprintBuilder.Build(new BlueprintRequest
            {
                Tenant = Tenant,
                Domains = Domains,
                Profile = profile,
                Outbound = outbound,
                Scope = scope,
                RelayKey = relayKey,
            }, Deployment);
        }

        /// <summary>The relay key from --relay-key-file or POSTERN_RELAY_KEY, checked against the stored hash; null when neither is given.</summary>
        public string? RelayKey(BlueprintOptions options)
        {
            string? text;
            string source;
            if (_result.GetValue(options.RelayKeyFile) is { } path)
            {
                text = ReadSecretFile(path, "--relay-key-file");
                source = path == "-" ? "on standard input" : $"in '{path}'";
            }
            else
            {
                text = Environment.GetEnvironmentVariable(RelayKeyVariable);
                source = $"in {RelayKeyVariable}";
            }
            var key = text?.Trim();
            if (string.IsNullOrEmpty(key))
                return null;
            if (!Tenant.RelayEnabled)
                throw new PosternException($"tenant '{Tenant.Name}' has no relay key: run 'postern relay enable {Tenant.Name}' first");
            if (!Core.Tenants.RelayKey.Matches(Core.Tenants.RelayKey.Hash(key), Tenant.RelayKeyHash))
                throw new PosternException($"the relay key {source} is not tenant '{Tenant.Name}''s current relay key (after 'postern relay rotate', give the new one)");
            return key;
        }
    }

    /// <summary>Options that shape the blueprint.</summary>
    private sealed class BlueprintOptions
    {
        public Argument<string> Tenant { get; } = new("TENANT") { Description = "Tenant name or id" };

        public Option<string?> Profile { get; } = new("--profile") { Description = "integrated, relay or relay-legacy (default: the one last applied, else integrated)" };

        public Option<string?> Outbound { get; } = new("--outbound") { Description = "off, direct or via-m365 (default: the tenant's setting)" };

        public Option<FileInfo?> Scope { get; } = new("--scope") { Description = "Limit the rules to listed users: one address per line, 'recipient:' or 'sender:' for one direction (default: the scope last applied)" };

        public Option<bool> AllUsers { get; } = new("--all-users") { Description = "Apply to all users, forgetting a limited scope applied before" };

        public Option<FileInfo?> Config { get; } = new("--config") { Description = "JSON configuration (section \"Postern\": ProductDomain, HeaderPrefix, Regions:{region}:EgressIPs)" };

        public Option<string?> RelayKeyFile { get; } = new("--relay-key-file") { Description = $"File holding the tenant's relay key ('-' for standard input); or set {RelayKeyVariable}" };

        public void AddTo(Command command, bool relayKey)
        {
            command.Add(Tenant);
            command.Add(Profile);
            command.Add(Outbound);
            command.Add(Scope);
            command.Add(AllUsers);
            command.Add(Config);
            if (relayKey)
                command.Add(RelayKeyFile);
        }
    }

    /// <summary>Where Exchange Online and Entra ID are, when not where the stored connection says.</summary>
    private sealed class ConnectionOptions
    {
        private readonly Option<string?> _endpoint = new("--endpoint") { Description = "Exchange Online's URL (default the cloud's, https://outlook.office365.com, or as stored by connect), e.g. an emulator's" };
        private readonly Option<string?> _authority = new("--authority") { Description = "Entra ID's URL (default the cloud's, https://login.microsoftonline.com, or as stored by connect)" };
        private readonly Option<FileInfo?> _trust = new("--trust-certificate") { Description = "Also accept this server certificate (PEM or DER), e.g. an emulator's" };
        private readonly Option<bool> _verbose = new("--verbose") { Description = "Show each call to Exchange Online (cmdlet, item, status; never values)" };

        public void AddTo(Command command)
        {
            command.Add(_endpoint);
            command.Add(_authority);
            command.Add(_trust);
            command.Add(_verbose);
        }

        public Uri? Endpoint(ParseResult result) => ParseUrl(result.GetValue(_endpoint), "--endpoint");

        public Uri? Authority(ParseResult result) => ParseUrl(result.GetValue(_authority), "--authority");

        public X509Certificate2? Trusted(ParseResult result) => TrustedPem(result) is { } pem ? X509Certificate2.CreateFromPem(pem) : null;

        public string? TrustedPem(ParseResult result)
        {
            if (result.GetValue(_trust) is not { } file)
                return null;
            try
            {
                var bytes = File.ReadAllBytes(file.FullName);
                var text = System.Text.Encoding.ASCII.GetString(bytes);
                var certificate = text.Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal)
                    ? X509Certificate2.CreateFromPem(text)
                    : X509CertificateLoader.LoadCertificate(bytes);
                using (certificate)
                    return certificate.ExportCertificatePem();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException)
            {
                throw new PosternException($"--trust-certificate '{file.FullName}' is not a readable certificate: {ex.Message}");
            }
        }

        public ILogger Logger(CliContext cli, ParseResult result) =>
            new TextWriterLogger(cli.Error, result.GetValue(_verbose) ? LogLevel.Debug : LogLevel.Warning);

        private static Uri? ParseUrl(string? value, string option)
        {
            if (value is null)
                return null;
            if (!Uri.TryCreate(value.EndsWith('/') ? value : value + "/", UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttps)
                throw new PosternException($"{option} '{value}' is not an https:// URL");
            return uri;
        }
    }

    /// <summary>Disposes the connection's certificate (and its private key) when the command ends.</summary>
    private sealed class ConnectionScope(ExoConnection connection) : IDisposable
    {
        public ExoConnection Value { get; } = connection;

        public void Dispose()
        {
            Value.Certificate.Dispose();
            Value.TrustedServerCertificate?.Dispose();
        }
    }

    private static M365Deployment LoadDeployment(FileInfo? file)
    {
        var builder = new ConfigurationBuilder();
        if (file is not null)
        {
            if (!file.Exists)
                throw new PosternException($"--config '{file.FullName}' does not exist");
            builder.AddJsonFile(file.FullName, optional: false);
        }
        builder.AddEnvironmentVariables();
        var deployment = new M365Deployment();
        try
        {
            builder.Build().GetSection(M365Deployment.Section).Bind(deployment);
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException or InvalidDataException)
        {
            throw new PosternException($"configuration: {ex.Message}");
        }
        deployment.ApplyDefaults();
        if (deployment.Validate().FirstOrDefault() is { } problem)
            throw new PosternException(problem);
        return deployment;
    }
}
