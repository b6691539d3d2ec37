#!/usr/bin/env python3
"""Writes the mixed message corpus bench/scan-bench.sh scans and relays.

    python3 bench/scan-corpus.py [--lf] OUT_DIR [RELAY_KEY]

Ten messages, deterministic (seeded), each a file OUT_DIR/NN-name.eml, with CRLF line ends as they
arrive over SMTP — or LF with --lf, for smtp-source -F, which adds the CR itself. With
RELAY_KEY, each starts with "X-Postern-Key: RELAY_KEY", as the Exchange Online redirect rule adds
it, so smtp-source can send the files to Postern as they are. The mix is what a tenant's inbound
mail looks like to the built-in engines: short and long text, HTML newsletters full of links, PDF
and image attachments, zip archives (one nested), and Office files (OOXML .docx, a macro-enabled
.xlsm, and a legacy OLE2 .doc). Standard library only.
"""
import base64
import io
import os
import random
import struct
import sys
import zipfile
from email.utils import formatdate

rng = random.Random(20261122)
WORDS = ("the quarterly report shows revenue growth across all regions while costs stayed flat "
         "please review the attached figures before our meeting on thursday and send comments "
         "to the finance team the new supplier contract needs a signature from legal as well").split()


def sentence(n=14):
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def paragraph(lines=6):
    return "\r\n".join(sentence() for _ in range(lines))


def text_of_size(size):
    parts, total = [], 0
    while total < size:
        p = paragraph()
        parts.append(p)
        total += len(p) + 4
    return "\r\n\r\n".join(parts)


def b64(data):
    s = base64.b64encode(data).decode("ascii")
    return "\r\n".join(s[i:i + 76] for i in range(0, len(s), 76))


def headers(subject, content_type, sender="Alex Partner <alex@partner.example>"):
    return (f"From: {sender}\r\nTo: Alice <alice@bench.test>\r\nSubject: {subject}\r\n"
            f"Date: {formatdate(1795000000, localtime=False)}\r\n"
            f"Message-ID: <{rng.getrandbits(64):016x}@partner.example>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: {content_type}\r\n")


def multipart(subject, parts, kind="mixed"):
    boundary = f"=_bench_{rng.getrandbits(48):012x}"
    out = [headers(subject, f'multipart/{kind}; boundary="{boundary}"'), "\r\n"]
    for part_headers, body in parts:
        out.append(f"--{boundary}\r\n{part_headers}\r\n{body}\r\n")
    out.append(f"--{boundary}--\r\n")
    return "".join(out)


def attachment(name, mime, data):
    return (f'Content-Type: {mime}; name="{name}"\r\nContent-Disposition: attachment; filename="{name}"\r\n'
            f"Content-Transfer-Encoding: base64\r\n", b64(data))


TEXT_PART = ("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n", "")


def text_part(body):
    return (TEXT_PART[0], body)


def zip_bytes(entries):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            z.writestr(zipfile.ZipInfo(name, date_time=(2026, 11, 1, 9, 0, 0)), data)
    return buffer.getvalue()


def compound_file(entries):
    """A minimal OLE2 compound file (version 3, 512-byte sectors) with empty streams and storages:
    the directory is what Office type and VBA detection read."""
    entries = [("Root Entry", 5)] + entries
    dir_sectors = (len(entries) + 3) // 4
    data = bytearray(512 * (2 + dir_sectors))
    data[0:8] = bytes([0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1])
    struct.pack_into("<HHHHH", data, 0x18, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<I", data, 0x2C, 1)           # one FAT sector
    struct.pack_into("<I", data, 0x30, 1)           # directory starts at sector 1
    struct.pack_into("<I", data, 0x38, 4096)
    struct.pack_into("<I", data, 0x3C, 0xFFFFFFFE)
    struct.pack_into("<I", data, 0x44, 0xFFFFFFFE)
    for i in range(109):
        struct.pack_into("<I", data, 0x4C + i * 4, 0 if i == 0 else 0xFFFFFFFF)
    fat = 512
    data[fat:fat + 512] = b"\xff" * 512
    struct.pack_into("<I", data, fat, 0xFFFFFFFD)
    for s in range(1, dir_sectors + 1):
        struct.pack_into("<I", data, fat + s * 4, 0xFFFFFFFE if s == dir_sectors else s + 1)
    for i, (name, kind) in enumerate(entries):
        at = 1024 + i * 128
        encoded = name.encode("utf-16-le")
        data[at:at + len(encoded)] = encoded
        struct.pack_into("<H", data, at + 0x40, len(encoded) + 2)
        data[at + 0x42] = kind
        data[at + 0x43] = 1
        struct.pack_into("<I", data, at + 0x44, 0xFFFFFFFF)
        struct.pack_into("<I", data, at + 0x48, i + 1 if 0 < i < len(entries) - 1 else 0xFFFFFFFF)
        struct.pack_into("<I", data, at + 0x4C, 1 if i == 0 and len(entries) > 1 else 0xFFFFFFFF)
        struct.pack_into("<I", data, at + 0x74, 0xFFFFFFFE)
    return bytes(data)


def ooxml(kind, main_part, vba=False):
    content = f"<?xml version=\"1.0\"?><doc>{''.join('<p>' + sentence() + '</p>' for _ in range(120))}</doc>"
    entries = [
        ("[Content_Types].xml", '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'),
        ("_rels/.rels", '<?xml version="1.0"?><Relationships/>'),
        ("docProps/core.xml", '<?xml version="1.0"?><coreProperties/>'),
        (main_part, content),
    ]
    if vba:
        entries.append((f"{kind}/vbaProject.bin", compound_file([("VBA", 1), ("_VBA_PROJECT", 2), ("dir", 2), ("PROJECT", 2)])))
    return zip_bytes(entries)


def pdf(size):
    body = b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    stream = bytes(rng.getrandbits(8) for _ in range(size))
    return body + b"3 0 obj << /Length %d >> stream\n" % len(stream) + stream + b"\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def png(size):
    return b"\x89PNG\r\n\x1a\n" + bytes(rng.getrandbits(8) for _ in range(size))


def html_with_links(links):
    items = []
    for i in range(links):
        href = f"https://news{i % 7}.partner.example/track?id={rng.getrandbits(40):x}&u=alice"
        shown = f"https://www.partner.example/offer/{i}" if i % 5 == 0 else f"Read more about item {i}"
        items.append(f'<p>{sentence()} <a href="{href}">{shown}</a></p>')
    return "<html><body><h1>Partner newsletter</h1>" + "\r\n".join(items) + '<img src="cid:logo@bench"></body></html>'


def corpus():
    yield "01-text-short", headers("Lunch on Friday?", "text/plain; charset=utf-8") + "\r\n" + text_of_size(1500) + "\r\n"
    yield "02-text-long", (headers("Minutes of the board meeting", "text/plain; charset=utf-8") + "\r\n" + text_of_size(9000)
                           + "\r\nDetails: https://intranet.partner.example/board/minutes?id=42 and www.partner.example/agenda\r\n")
    yield "03-html-newsletter", multipart("Partner newsletter: November", [
        text_part(text_of_size(3000)),
        ("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n", html_with_links(40)),
    ], kind="alternative")
    yield "04-pdf-invoice", multipart("Invoice 2026-1187", [
        text_part(paragraph()), attachment("invoice-2026-1187.pdf", "application/pdf", pdf(40000))])
    yield "05-zip-reports", multipart("Monthly reports", [
        text_part(paragraph()),
        attachment("reports.zip", "application/zip", zip_bytes([
            (f"report-{m}.csv", "\n".join(",".join(str(rng.randint(0, 9999)) for _ in range(8)) for _ in range(400)))
            for m in ("sep", "oct", "nov")]))])
    yield "06-zip-nested", multipart("Archive of archives", [
        text_part(paragraph()),
        attachment("archive.zip", "application/zip", zip_bytes([
            ("inner.zip", zip_bytes([("notes.txt", text_of_size(6000))])), ("readme.txt", paragraph())]))])
    yield "07-docx", multipart("Contract draft", [
        text_part(paragraph()),
        attachment("contract.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                   ooxml("word", "word/document.xml"))])
    yield "08-xlsm-macros", multipart("Budget with macros", [
        text_part(paragraph()),
        attachment("budget.xlsm", "application/vnd.ms-excel.sheet.macroEnabled.12", ooxml("xl", "xl/workbook.xml", vba=True))])
    yield "09-doc-ole2", multipart("Old template", [
        text_part(paragraph()),
        attachment("template.doc", "application/msword",
                   compound_file([("WordDocument", 2), ("1Table", 2), ("\x05SummaryInformation", 2)]))])
    yield "10-html-inline-image", multipart("Photos from the offsite", [
        ("Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n", html_with_links(5)),
        ("Content-Type: image/png\r\nContent-ID: <logo@bench>\r\nContent-Disposition: inline; filename=\"logo.png\"\r\n"
         "Content-Transfer-Encoding: base64\r\n", b64(png(30000))),
    ], kind="related")


def main():
    args = sys.argv[1:]
    lf = "--lf" in args
    args = [a for a in args if a != "--lf"]
    if len(args) not in (1, 2):
        sys.exit(__doc__)
    out = args[0]
    key = args[1] if len(args) == 2 else None
    os.makedirs(out, exist_ok=True)
    for name, text in corpus():
        data = (f"X-Postern-Key: {key}\r\n" if key else "") + text
        if lf:
            data = data.replace("\r\n", "\n")
        with open(os.path.join(out, name + ".eml"), "wb") as f:
            f.write(data.encode("utf-8"))


if __name__ == "__main__":
    main()
