namespace Postern.Core.Scanning.Engines;

/// <summary>
/// Reduces text to a "skeleton" in which strings that look alike are equal: lower case, accents
/// dropped (é → e), letters of other scripts that look Latin mapped to it (Cyrillic а, Greek ο),
/// full-width forms narrowed, and the digit and letter pairs that fool a quick reader folded
/// (0 → o, 1 and i → l, rn → m, vv → w, cl → d). Built on tables, not on
/// <see cref="string.Normalize()"/>, because Postern runs with invariant globalization, where
/// normalisation does not decompose.
/// </summary>
/// <remarks>Both sides of a comparison are reduced the same way, so folding more can only make more
/// things match; the tables stay small and aimed at what impersonators use.</remarks>
public static class Confusables
{
    // Latin-1 Supplement, Latin Extended-A/B and Latin Extended Additional: letter → base letter (from NFKD).
    private const string AccentedLetters =
        "ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝàáâãäåçèéêëìíîïðñòóôõöøùúûüýÿĀāĂ" +
        "ăĄąĆćĈĉĊċČčĎďĐđĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĦħĨĩĪīĬĭĮįİıĴĵĶķĹĺĻļĽľĿŀŁ" +
        "łŃńŅņŇňŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŦŧŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽžſƀƃƅ" +
        "ƈƒƙƚƞƠơƥƭƯưƴƶǍǎǏǐǑǒǓǔǕǖǗǘǙǚǛǜǞǟǠǡǥǦǧǨǩǪǫǬǭǰǴǵǸǹǺǻȀȁȂȃȄȅȆȇȈȉȊ" +
        "ȋȌȍȎȏȐȑȒȓȔȕȖȗȘșȚțȞȟȡȥȦȧȨȩȪȫȬȭȮȯȰȱȲȳȴȵȶȷȼȿɀɇɉɍɏḀḁḂḃḄḅḆḇḈḉḊḋḌḍ" +
        "ḎḏḐḑḒḓḔḕḖḗḘḙḚḛḜḝḞḟḠḡḢḣḤḥḦḧḨḩḪḫḬḭḮḯḰḱḲḳḴḵḶḷḸḹḺḻḼḽḾḿṀṁṂṃṄṅṆṇṈṉ" +
        "ṊṋṌṍṎṏṐṑṒṓṔṕṖṗṘṙṚṛṜṝṞṟṠṡṢṣṤṥṦṧṨṩṪṫṬṭṮṯṰṱṲṳṴṵṶṷṸṹṺṻṼṽṾṿẀẁẂẃẄẅ" +
        "ẆẇẈẉẊẋẌẍẎẏẐẑẒẓẔẕẖẗẘẙẚẛẠạẢảẤấẦầẨẩẪẫẬậẮắẰằẲẳẴẵẶặẸẹẺẻẼẽẾếỀềỂểỄễ" +
        "ỆệỈỉỊịỌọỎỏỐốỒồỔổỖỗỘộỚớỜờỞởỠỡỢợỤụỦủỨứỪừỬửỮữỰựỲỳỴỵỶỷỸỹ";

    private const string BaseLetters =
        "aaaaaaceeeeiiiidnoooooouuuuyaaaaaaceeeeiiiidnoooooouuuuyyaaa" +
        "aaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiiijjkklllllllll" +
        "lnnnnnnoooooorrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzsbbb" +
        "cfklnooptuuyzaaiioouuuuuuuuuuaaaagggkkoooojggnnaaaaaaeeeeiii" +
        "ioooorrrruuuusstthhdzaaeeooooooooyylntjcszejryaabbbbbbccdddd" +
        "ddddddeeeeeeeeeeffgghhhhhhhhhhiiiikkkkkkllllllllmmmmmmnnnnnn" +
        "nnoooooooopppprrrrrrrrssssssssssttttttttuuuuuuuuuuvvvvwwwwww" +
        "wwwwxxxxyyzzzzzzhtwyasaaaaaaaaaaaaaaaaaaaaaaaaeeeeeeeeeeeeee" +
        "eeiiiioooooooooooooooooooooooouuuuuuuuuuuuuuyyyyyyyy";

    private static readonly Dictionary<char, string> Expansions = new()
    {
        ['ß'] = "ss",
        ['æ'] = "ae",
        ['Æ'] = "ae",
        ['œ'] = "oe",
        ['Œ'] = "oe",
        ['þ'] = "th",
        ['Þ'] = "th",
        ['ĳ'] = "ij",
        ['Ĳ'] = "ij",
    };

    // Cyrillic, Greek and Armenian letters that render like Latin ones (after lower-casing).
    private const string LookAlikePairs = "аa еe ёe оo рp сc уy хx ѕs іi їi јj һh ԁd ԛq ԝw ӏl кk ɡg ɑa ıi αa βb εe ηn ιi κk νv οo ρp τt υu χx γy ωw օo սu հh";

    private static readonly Dictionary<char, char> Map = BuildMap();

    private static Dictionary<char, char> BuildMap()
    {
        var map = new Dictionary<char, char>();
        for (var i = 0; i < AccentedLetters.Length; i++)
            map[AccentedLetters[i]] = BaseLetters[i];
        foreach (var pair in LookAlikePairs.Split(' '))
            map[pair[0]] = pair[1];
        return map;
    }

    /// <summary>Lower case, accents removed, look-alike letters of other scripts mapped to Latin; digits and spacing kept.</summary>
    public static string Fold(string text)
    {
        var builder = new System.Text.StringBuilder(text.Length);
        foreach (var raw in text)
        {
            var c = char.ToLowerInvariant(raw);
            if (c is >= '\uFF01' and <= '\uFF5E')
                c = char.ToLowerInvariant((char)(c - 0xFEE0)); // full-width ASCII
            if (Expansions.TryGetValue(c, out var expansion))
                builder.Append(expansion);
            else if (c is >= '\u0300' and <= '\u036F')
                continue; // combining accent written separately
            else
                builder.Append(Map.TryGetValue(c, out var mapped) ? mapped : c);
        }
        return builder.ToString();
    }

    /// <summary><see cref="Fold"/>, then the digit and letter-pair confusions: the form two look-alike strings share.</summary>
    public static string Skeleton(string text)
    {
        var folded = Fold(text);
        var builder = new System.Text.StringBuilder(folded.Length);
        foreach (var c in folded)
        {
            builder.Append(c switch
            {
                '0' => 'o',
                '1' or 'i' or '|' or '!' => 'l',
                '3' => 'e',
                '5' => 's',
                '$' => 's',
                '@' => 'a',
                _ => c,
            });
        }
        return builder.Replace("rn", "m").Replace("vv", "w").Replace("cl", "d").ToString();
    }
}
