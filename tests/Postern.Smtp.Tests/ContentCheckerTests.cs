using System.Text;
using Postern.Smtp.Internal;

namespace Postern.Smtp.Tests;

/// <summary>The one content check DATA and BDAT share, fed in every split so chunk boundaries can't change a verdict.</summary>
public sealed class ContentCheckerTests
{
    private static readonly SmtpLimits Limits = new() { MaxHeaderSectionSize = 64, MaxTextLineLength = 1000 };

    /// <summary>Feeds <paramref name="parts"/> in order; the failure (if any) and at which part the header section completed.</summary>
    private static (SmtpReply? Failure, int HeaderCompletedAt, long Size) Run(params byte[][] parts)
    {
        var checker = new ContentChecker(Limits);
        var completedAt = -1;
        for (var i = 0; i < parts.Length; i++)
        {
            var result = checker.Check(parts[i]);
            if (result == ContentCheck.HeaderSectionComplete)
            {
                Assert.Equal(-1, completedAt);
                completedAt = i;
            }
        }
        return (checker.Complete(), completedAt, checker.Size);
    }

    /// <summary>Every way to cut <paramref name="content"/> in two or three pieces gives the verdict of the whole.</summary>
    private static void AssertSameVerdictForEverySplit(string content, SmtpReply? expected)
    {
        var bytes = Encoding.Latin1.GetBytes(content);
        Assert.Equal(expected, Run(bytes).Failure);
        for (var i = 0; i <= bytes.Length; i++)
        {
            Assert.Equal(expected, Run(bytes[..i], bytes[i..]).Failure);
            for (var j = i; j <= bytes.Length; j++)
            {
                Assert.Equal(expected, Run(bytes[..i], bytes[i..j], bytes[j..]).Failure);
            }
        }
    }

    [Theory]
    [InlineData("Subject: x\r\n\r\nbody\r\n")]
    [InlineData("no final line end")]
    [InlineData("")]
    [InlineData("\r\n")]
    public void Accepts_crlf_only_content_however_it_is_cut(string content) => AssertSameVerdictForEverySplit(content, null);

    [Theory]
    [InlineData("a\nb\r\n")]
    [InlineData("a\rb\r\n")]
    [InlineData("a\r\n\n")]
    [InlineData("a\r\r\n")]
    [InlineData("ends with a CR\r")]
    [InlineData("\n")]
    public void Refuses_a_bare_cr_or_lf_however_it_is_cut(string content) =>
        AssertSameVerdictForEverySplit(content, SmtpReplies.BareLineEndingInContent);

    [Fact]
    public void A_crlf_split_between_chunks_is_one_line_end()
    {
        var (failure, completedAt, size) = Run("Subject: x\r"u8.ToArray(), "\n\r"u8.ToArray(), "\nbody\r"u8.ToArray(), "\n"u8.ToArray());

        Assert.Null(failure);
        Assert.Equal(2, completedAt); // the empty line ends with the LF at the start of the third chunk
        Assert.Equal(20, size);
    }

    [Fact]
    public void A_cr_ending_the_last_chunk_is_bare()
    {
        Assert.Equal(SmtpReplies.BareLineEndingInContent, Run("a\r\n"u8.ToArray(), "b\r"u8.ToArray()).Failure);
    }

    [Fact]
    public void Measures_text_lines_including_crlf_but_not_a_transparency_dot()
    {
        // RFC 5321 §4.5.3.1.6: 1000 octets with the CRLF, "not counting the leading dot duplicated for transparency";
        // DATA hands the checker content after dot-unstuffing, so a 998-octet line starting with a dot passes both ways.
        AssertSameVerdictForEverySplit("X: y\r\n\r\n" + new string('.', 998) + "\r\n", null);
        AssertSameVerdictForEverySplit("X: y\r\n\r\n" + new string('a', 999) + "\r\n", SmtpReplies.TextLineTooLong);
    }

    [Fact]
    public void Refuses_a_header_section_over_its_limit_however_it_is_cut()
    {
        // Limit 64: a section that ends within it passes, one still open past it does not.
        AssertSameVerdictForEverySplit("A: 1\r\n" + "B: " + new string('x', 50) + "\r\n\r\n" + new string('b', 200) + "\r\n", null);
        AssertSameVerdictForEverySplit(string.Concat(Enumerable.Repeat("A: 12345678\r\n", 6)), SmtpReplies.HeaderSectionTooLarge);
        AssertSameVerdictForEverySplit(string.Concat(Enumerable.Repeat("A: 12345678\r\n", 5)) + "\r\n", SmtpReplies.HeaderSectionTooLarge);
    }

    [Fact]
    public void Refuses_content_over_the_message_size()
    {
        var limits = new SmtpLimits { MaxMessageSize = 10 };
        var checker = new ContentChecker(limits);

        Assert.Equal(ContentCheck.HeaderSectionComplete, checker.Check("\r\n12345678"u8));
        Assert.Equal(ContentCheck.Failed, checker.Check("9"u8));
        Assert.Equal(SmtpReplies.MessageTooBig, checker.Failure);
        Assert.False(new ContentChecker(limits).AdmitChunk(11));
    }
}
