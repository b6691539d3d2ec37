using System.Text;
using Postern.Smtp.Internal;

namespace Postern.Smtp.Tests;

public sealed class CommandParserTests
{
    private static SmtpCommand Parse(string line, bool utf8 = false) => SmtpCommand.Parse(Encoding.UTF8.GetBytes(line), utf8);

    [Theory]
    [InlineData("EHLO x", "Ehlo")]
    [InlineData("ehlo x", "Ehlo")]
    [InlineData("HeLo x", "Helo")]
    [InlineData("MAIL FROM:<>", "Mail")]
    [InlineData("rcpt TO:<a@b>", "Rcpt")]
    [InlineData("DATA", "Data")]
    [InlineData("BDAT 1", "Bdat")]
    [InlineData("RSET", "Rset")]
    [InlineData("NOOP", "Noop")]
    [InlineData("QUIT", "Quit")]
    [InlineData("HELP", "Help")]
    [InlineData("VRFY a", "Vrfy")]
    [InlineData("EXPN a", "Expn")]
    [InlineData("starttls", "StartTls")]
    [InlineData("DATAX", "Unknown")]
    [InlineData("DAT", "Unknown")]
    [InlineData("D@TA", "Unknown")]
    [InlineData("", "Unknown")]
    [InlineData(" DATA", "Unknown")]
    public void Recognises_verbs_case_insensitively(string line, string verb)
    {
        Assert.Equal(verb, Parse(line).Verb.ToString());
    }

    [Theory]
    [InlineData("<user@example.com>", "user", "example.com")]
    [InlineData("<User.Name+tag@Sub.Example.COM>", "User.Name+tag", "Sub.Example.COM")]
    [InlineData("<\"a b\"@example.com>", "\"a b\"", "example.com")]
    [InlineData("<\"a@b\\\"c\"@example.com>", "\"a@b\\\"c\"", "example.com")]
    [InlineData("<x@[10.0.0.1]>", "x", "[10.0.0.1]")]
    [InlineData("<x@[IPv6:2001:db8::ff00:42:8329]>", "x", "[IPv6:2001:db8::ff00:42:8329]")]
    [InlineData("<!#$%&'*+-/=?^_`{|}~@x1-y.example>", "!#$%&'*+-/=?^_`{|}~", "x1-y.example")]
    [InlineData("<a@b>", "a", "b")]
    public void Parses_valid_recipients(string path, string local, string domain)
    {
        var command = Parse("RCPT TO:" + path);

        Assert.Null(command.Error);
        Assert.Equal(new SmtpAddress(local, domain), command.Address);
    }

    [Theory]
    [InlineData("<>", "501 5.1.3")]
    [InlineData("<@a:b@c>", "501 5.1.3")]
    [InlineData("<@a,@b:c@d>", "501 5.1.3")]
    [InlineData("<a@b", "501 5.5.4")]
    [InlineData("a@b", "501 5.5.4")]
    [InlineData("<a@b> x", "555 5.5.4")]
    [InlineData("<a@b>x", "501 5.5.4")]
    [InlineData("<a>", "501 5.1.3")]
    [InlineData("<a@>", "501 5.1.3")]
    [InlineData("<@b>", "501 5.1.3")]
    [InlineData("<a..b@c>", "501 5.1.3")]
    [InlineData("<a.@c>", "501 5.1.3")]
    [InlineData("<a b@c>", "501 5.1.3")]
    [InlineData("<a@b..c>", "501 5.1.3")]
    [InlineData("<a@-b.c>", "501 5.1.3")]
    [InlineData("<a@b-.c>", "501 5.1.3")]
    [InlineData("<a@b_c.d>", "501 5.1.3")]
    [InlineData("<a@[1.2.3]>", "501 5.1.3")]
    [InlineData("<a@[1.2.3.4.5]>", "501 5.1.3")]
    [InlineData("<a@[IPv6:zz::1]>", "501 5.1.3")]
    [InlineData("<a@[IPv6:1.2.3.4]>", "501 5.1.3")]
    [InlineData("<a@[tag:content]>", "501 5.1.3")]
    [InlineData("<\"unterminated@b>", "501 5.5.4")]
    [InlineData("<\"a\"b@c>", "501 5.1.3")]
    [InlineData("<\"a\u0001\"@c>", "501 5.1.3")]
    [InlineData("<ü@b>", "553 5.6.7")]
    [InlineData("<a@b<c>", "501 5.5.4")]
    public void Refuses_invalid_recipients(string path, string status)
    {
        var command = Parse("RCPT TO:" + path);

        Assert.NotNull(command.Error);
        Assert.Equal(status, $"{command.Error.Code} {command.Error.EnhancedCode}");
    }

    [Fact]
    public void Accepts_a_domainless_postmaster_for_rcpt_only()
    {
        Assert.Equal(new SmtpAddress("postmaster", ""), Parse("RCPT TO:<postmaster>").Address);
        Assert.Equal("postmaster", Parse("RCPT TO:<postmaster>").Address!.Address);
        Assert.NotNull(Parse("MAIL FROM:<postmaster>").Error);
    }

    [Fact]
    public void Parses_mail_parameters()
    {
        var command = Parse("MAIL FROM:<a@b> size=42 Body=8bitmime SMTPUTF8");

        Assert.Null(command.Error);
        Assert.True(command.HasParameters);
        Assert.Equal(42, command.Size);
        Assert.Equal("8BITMIME", command.Body);
        Assert.True(command.SmtpUtf8);
        Assert.Equal(SmtpAddress.Null, Parse("MAIL FROM:<>").Address);
        Assert.True(Parse("MAIL FROM:<>").Address!.IsNull);
    }

    [Theory]
    [InlineData("MAIL FROM:<a@b> SIZE", "501 5.5.4")]
    [InlineData("MAIL FROM:<a@b> SIZE=", "501 5.5.4")]
    [InlineData("MAIL FROM:<a@b> SIZE=-1", "501 5.5.4")]
    [InlineData("MAIL FROM:<a@b> SMTPUTF8=yes", "501 5.5.4")]
    [InlineData("MAIL FROM:<a@b> BODY=8BITMIME BODY=7BIT", "501 5.5.4")]
    [InlineData("MAIL FROM:<a@b> -X=1", "501 5.5.4")]
    [InlineData("MAIL FROM:<a@b> AUTH=<>", "555 5.5.4")]
    [InlineData("MAIL FROM:<a@b> RET=FULL", "555 5.5.4")]
    [InlineData("MAIL TO:<a@b>", "501 5.5.4")]
    [InlineData("MAIL", "501 5.5.4")]
    [InlineData("MAIL FROM:", "501 5.5.4")]
    public void Refuses_bad_mail_parameters(string line, string status)
    {
        var error = Parse(line).Error;

        Assert.NotNull(error);
        Assert.Equal(status, $"{error.Code} {error.EnhancedCode}");
    }

    [Theory]
    [InlineData("BDAT 0", 0L, false)]
    [InlineData("BDAT 0 LAST", 0L, true)]
    [InlineData("bdat 123 last", 123L, true)]
    [InlineData("BDAT 999999999999999999", 999999999999999999L, false)]
    public void Parses_bdat(string line, long size, bool last)
    {
        var command = Parse(line);

        Assert.Null(command.Error);
        Assert.Equal(size, command.ChunkSize);
        Assert.Equal(last, command.Last);
    }

    [Theory]
    [InlineData("BDAT")]
    [InlineData("BDAT -1")]
    [InlineData("BDAT 1 FIRST")]
    [InlineData("BDAT 1x")]
    [InlineData("BDAT 9999999999999999999")]
    [InlineData("BDAT +1")]
    public void Refuses_bad_bdat(string line)
    {
        Assert.Equal(SmtpVerb.Bdat, Parse(line).Verb);
        Assert.NotNull(Parse(line).Error);
    }

    [Fact]
    public void Allows_utf8_only_with_smtputf8()
    {
        Assert.Null(Parse("RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>", utf8: true).Error);
        Assert.Equal(553, Parse("RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>").Error!.Code);
        Assert.NotNull(SmtpCommand.Parse([.. "RCPT TO:<"u8, 0xC3, 0x28, .. "@b>"u8], rcptAllowsUtf8: true).Error);
    }

    [Theory]
    [InlineData(250, "2.0.0", true)]
    [InlineData(550, "5.7.1", true)]
    [InlineData(451, "4.123.999", true)]
    [InlineData(550, "4.7.1", false)]
    [InlineData(550, "5.7", false)]
    [InlineData(550, "5.1234.1", false)]
    [InlineData(550, "", false)]
    [InlineData(550, "5.a.1", false)]
    public void Validates_enhanced_codes(int code, string enhanced, bool valid)
    {
        Assert.Equal(valid, ReplyFormatter.IsValidEnhancedCode(enhanced, code / 100));
    }
}
