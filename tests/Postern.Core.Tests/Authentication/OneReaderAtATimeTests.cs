using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using MimeKit;
using MimeKit.Cryptography;
using Postern.Core.Authentication;

namespace Postern.Core.Tests.Authentication;

/// <summary>
/// A <see cref="MimeMessage"/> is not safe for concurrent readers (MimeKit loads fields lazily and a part's content
/// stream has one position), so DKIM, ARC and DMARC must read it one after another. DNS that answers on another
/// thread, as the real resolver does, is what would let two verifications run at once.
/// </summary>
public sealed class OneReaderAtATimeTests
{
    private static readonly Lazy<(byte[] Wire, InMemoryDnsResolver Dns)> Signed = new(SignedAndSealedTwice);

    [Fact]
    public async Task Dkim_and_arc_key_lookups_of_one_message_never_overlap()
    {
        var (wire, dns) = Signed.Value;
        var resolver = new AnswersLater(dns, holdKeyLookups: TimeSpan.FromMilliseconds(100));

        var report = await new AuthenticationChecker(resolver).CheckAsync(Parse(wire), AuthenticationScenario.FromSender);

        Assert.Equal(["pass", "pass", "pass"], report.Dkim.Select(d => d.Keyword));
        Assert.Equal(ArcResult.Pass, report.Arc.Result);
        // Three DKIM keys, then the ARC keys: one verification at a time, so never two key lookups at once.
        Assert.True(resolver.KeyLookups >= 4, $"{resolver.KeyLookups} key lookups");
        Assert.Equal(1, resolver.MostKeyLookupsAtOnce);
    }

    [Fact]
    public async Task Checking_a_message_with_many_signatures_gives_the_same_results_every_time()
    {
        var (wire, dns) = Signed.Value;
        var checker = new AuthenticationChecker(new AnswersLater(dns, holdKeyLookups: TimeSpan.Zero));
        var expected = Summary(await new AuthenticationChecker(dns).CheckAsync(Parse(wire), AuthenticationScenario.FromSender));
        Assert.Equal("dkim=pass,pass,pass arc=pass dmarc=pass spf=pass", expected);

        // Each check gets a freshly parsed message (nothing loaded yet), four at a time across the thread pool.
        var summaries = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            var seen = new List<string>();
            for (var i = 0; i < 50; i++)
                seen.Add(Summary(await checker.CheckAsync(Parse(wire), AuthenticationScenario.FromSender)));
            return seen;
        })));

        Assert.All(summaries.SelectMany(s => s), s => Assert.Equal(expected, s));
    }

    private static string Summary(AuthenticationReport report) =>
        $"dkim={string.Join(',', report.Dkim.Select(d => d.Keyword))} arc={report.Arc.Keyword} dmarc={report.Dmarc.Result.ToString().ToLowerInvariant()} spf={report.Spf.Keyword}";

    private static MimeMessage Parse(byte[] wire) => MimeMessage.Load(new MemoryStream(wire, writable: false));

    /// <summary>fabrikam.test's message with an attachment, three DKIM signatures (RSA twice, Ed25519 once) and two ARC sets.</summary>
    private static (byte[] Wire, InMemoryDnsResolver Dns) SignedAndSealedTwice()
    {
        var world = AuthenticationScenario.Instance;
        var ed25519 = DkimSigningKey.GenerateEd25519();
        var dns = world.Dns()
            .AddTxt("ed1._domainkey.fabrikam.test", ed25519.DnsRecord("fabrikam.test", "ed1").Value)
            .AddTxt("s2048b._domainkey.fabrikam.test", world.SenderKey.DnsRecord("fabrikam.test", "s2048b").Value);

        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Alice", "alice@fabrikam.test"));
        message.To.Add(new MailboxAddress("Bob", "bob@contoso.test"));
        message.Subject = "Figures for November";
        message.Date = new DateTimeOffset(2026, 11, 23, 9, 0, 0, TimeSpan.Zero);
        message.MessageId = "figures-11@fabrikam.test";
        var body = new BodyBuilder { TextBody = "Hello Bob,\n\nthe figures are attached.\n\nAlice\n" };
        body.Attachments.Add("figures.bin", RandomNumberGenerator.GetBytes(48_000), new ContentType("application", "octet-stream"));
        message.Body = body.ToMessageBody();
        message.Prepare(EncodingConstraint.SevenBit);
        new DkimMessageSigner(world.SenderKey, "fabrikam.test", "s2048").Sign(message);
        new DkimMessageSigner(ed25519, "fabrikam.test", "ed1").Sign(message);
        new DkimMessageSigner(world.SenderKey, "fabrikam.test", "s2048b").Sign(message);
        message = AuthenticationScenario.Reload(message);

        var sealer = new ArcSealer(world.ArcKey, AuthenticationScenario.ArcDomain, AuthenticationScenario.ArcSelector, AuthenticationScenario.AuthservId,
            new ArcChainVerifier(dns));
        Assert.True(sealer.SealAsync(message, [new AuthenticationMethodResult("spf", "pass")]).GetAwaiter().GetResult().Sealed);
        message = AuthenticationScenario.Reload(message);
        Assert.True(sealer.SealAsync(message, [new AuthenticationMethodResult("arc", "pass")]).GetAwaiter().GetResult().Sealed);
        return (AuthenticationScenario.Wire(message), dns);
    }

    /// <summary>Answers from <paramref name="inner"/> on a thread-pool thread, as a network resolver does, and counts overlapping key lookups.</summary>
    private sealed class AnswersLater(InMemoryDnsResolver inner, TimeSpan holdKeyLookups) : IDnsResolver
    {
        private int _inFlight;
        private int _lookups;
        private int _most;

        public int KeyLookups => Volatile.Read(ref _lookups);

        public int MostKeyLookupsAtOnce => Volatile.Read(ref _most);

        public async Task<DnsAnswer<string>> QueryTxtAsync(string name, CancellationToken cancellationToken)
        {
            if (!name.Contains("._domainkey.", StringComparison.OrdinalIgnoreCase))
                return await Later(inner.QueryTxtAsync(name, cancellationToken)).ConfigureAwait(false);
            Interlocked.Increment(ref _lookups);
            var now = Interlocked.Increment(ref _inFlight);
            InterlockedMax(ref _most, now);
            try
            {
                if (holdKeyLookups > TimeSpan.Zero)
                    await Task.Delay(holdKeyLookups, cancellationToken).ConfigureAwait(false);
                return await Later(inner.QueryTxtAsync(name, cancellationToken)).ConfigureAwait(false);
            }
            finally
            {
                Interlocked.Decrement(ref _inFlight);
            }
        }

        public Task<DnsAnswer<IPAddress>> QueryAddressesAsync(string name, AddressFamily family, CancellationToken cancellationToken) =>
            Later(inner.QueryAddressesAsync(name, family, cancellationToken));

        public Task<DnsAnswer<MxHost>> QueryMxAsync(string name, CancellationToken cancellationToken) => Later(inner.QueryMxAsync(name, cancellationToken));

        public Task<DnsAnswer<string>> QueryPtrAsync(IPAddress address, CancellationToken cancellationToken) => Later(inner.QueryPtrAsync(address, cancellationToken));

        private static async Task<T> Later<T>(Task<T> answer)
        {
            await Task.Yield();
            return await answer.ConfigureAwait(false);
        }

        private static void InterlockedMax(ref int target, int value)
        {
            int current;
            while (value > (current = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, current) != current)
            {
            }
        }
    }
}
