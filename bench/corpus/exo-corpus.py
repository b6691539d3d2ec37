#!/usr/bin/env python3
"""Writes the corpus of mail as Exchange Online hands it to Postern, for every benchmark that needs one.

    /usr/bin/python3 bench/corpus/exo-corpus.py OUT_DIR COUNT RECIPIENT_DOMAIN

COUNT distinct messages (seeded, so the same COUNT gives the same text), in three forms:
  OUT_DIR/unsigned/NNNN.eml  as Exchange Online relays mail nobody signed;
  OUT_DIR/signed/NNNN.eml    the same, DKIM-signed by the sender's domain (RSA-2048, relaxed/relaxed);
  OUT_DIR/sealed/NNNN.eml    signed, and carrying the i=1 ARC set Exchange Online adds (ARC-Seal d=microsoft.example,
                             ARC-Authentication-Results from mx.microsoft.com), so a relay adds i=2.
and the DNS records they need (DKIM keys, SPF, DMARC for eight sender domains, Exchange Online's ARC key):
OUT_DIR/zone.txt, a zone file for bench/loopback-dns.py, and OUT_DIR/dns.txt, the TXT records one per line as
NAME<TAB>TXT<TAB>VALUE for an in-memory resolver (bench/signed-mail-bench); OUT_DIR/keys/ holds the private keys.

The mix (4-205 KB, 46 KB on average): short notes and longer reply threads as multipart/alternative (text + HTML),
HTML newsletters full of links, and messages with a PDF or .docx attachment; with Exchange Online's
headers (Received from *.prod.outlook.com, X-MS-Exchange-*, Authentication-Results, Thread-Index).
Files end in CRLF as they go over SMTP; the sender (bench/smtp-load.py) adds the relay key header.
Signing is python3-dkim's (dkimpy), an implementation independent of Postern's MimeKit.
Needs python3-dkim and python3-authres (dkim.arc_sign parses Authentication-Results with it).
"""
import base64
import importlib.util
import multiprocessing
import os
import random
import subprocess
import sys
from email.utils import formatdate

import dkim

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("scan_corpus", os.path.join(here, "..", "scan-corpus.py"))
sc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sc)  # its part builders (text, HTML, PDF, OOXML, zip); its main() does not run

SENDERS = ["contoso", "fabrikam", "northwind", "adatum", "litware", "tailspin", "woodgrove", "proseware"]
EXO_DOMAIN, EXO_SELECTOR, EXO_AUTHSERV = "microsoft.example", "arcselector10001", "mx.microsoft.com"
DKIM_SELECTOR = "selector1"
NAMES = ["Alex Wilber", "Megan Bowen", "Lidia Holloway", "Joni Sherman", "Nestor Wilke", "Isaiah Langer", "Lynne Robbins"]
# (kind, weight): the share of each kind of message in the corpus
KINDS = [("note", 30), ("thread", 25), ("newsletter", 15), ("pdf", 15), ("docx", 10), ("large-pdf", 5)]


def keygen(path):
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", path, "2048"], check=True, stderr=subprocess.DEVNULL)
    der = subprocess.run(["openssl", "rsa", "-in", path, "-pubout", "-outform", "DER"], check=True,
                         capture_output=True).stdout
    return base64.b64encode(der).decode()


TXT_RECORDS = []  # (name, value) of every TXT line, for dns.txt


def txt(name, value):
    """A zone-file TXT line; long values as several strings of at most 255 characters."""
    TXT_RECORDS.append((name, value))
    parts = " ".join(f'"{value[i:i + 250]}"' for i in range(0, len(value), 250))
    return f"{name}. 3600 IN TXT {parts}"


def exchange_id(rng):
    region = rng.choice(["eurprd02", "eurprd04", "namprd03", "apcprd06"])
    return f"{rng.choice(['AM6', 'DB9', 'VI1', 'BN8', 'SJ0'])}PR0{rng.randint(1, 9)}MB{rng.randint(1000, 9999)}.{region}.prod.outlook.com"


def alternative(rng, text, html):
    boundary = f"_000_{rng.getrandbits(64):016X}prodoutlookcom_"
    return (f'multipart/alternative; boundary="{boundary}"',
            f"--{boundary}\r\nContent-Type: text/plain; charset=\"us-ascii\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            f"{text}\r\n\r\n--{boundary}\r\nContent-Type: text/html; charset=\"us-ascii\"\r\n"
            f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{html}\r\n\r\n--{boundary}--\r\n")


def html_of(text):
    paragraphs = "".join(f'<p class="MsoNormal">{p}</p>\r\n' for p in text.split("\r\n\r\n"))
    return ('<html xmlns:o="urn:schemas-microsoft-com:office:office"><head><meta http-equiv="Content-Type" '
            'content="text/html; charset=us-ascii"><style>p.MsoNormal{margin:0cm;font-size:11.0pt;font-family:"Calibri",sans-serif;}'
            f'</style></head><body lang="EN-US"><div class="WordSection1">\r\n{paragraphs}</div></body></html>')


def with_attachment(rng, content_type, body, name, mime, data):
    boundary = f"_004_{rng.getrandbits(64):016X}prodoutlookcom_"
    return (f'multipart/mixed; boundary="{boundary}"',
            f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n{body}\r\n--{boundary}\r\n"
            f'Content-Type: {mime}; name="{name}"\r\nContent-Description: {name}\r\n'
            f'Content-Disposition: attachment; filename="{name}"; size={len(data)}\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{sc.b64(data)}\r\n\r\n--{boundary}--\r\n")


def content(rng, kind):
    """(subject, Content-Type, body) of one message of KIND."""
    if kind == "note":
        text = sc.text_of_size(rng.randint(200, 2500))
        return ("Quick question about the order",) + alternative(rng, text, html_of(text))
    if kind == "thread":
        text = sc.text_of_size(rng.randint(4000, 14000))
        return ("RE: RE: Project timeline and next steps",) + alternative(rng, text, html_of(text))
    if kind == "newsletter":
        html = sc.html_with_links(rng.randint(40, 150)).replace('<img src="cid:logo@bench">', "")
        return ("Your monthly partner update",) + alternative(rng, sc.text_of_size(rng.randint(2000, 6000)), html)
    text = sc.text_of_size(rng.randint(500, 2500))
    inner_type, inner = alternative(rng, text, html_of(text))
    if kind == "docx":
        doc = sc.ooxml("word", "word/document.xml") + bytes(rng.getrandbits(8) for _ in range(rng.randint(15000, 80000)))
        return ("Contract draft for review", *with_attachment(rng, inner_type, inner, "Contract draft v3.docx",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document", doc))
    size = rng.randint(120000, 145000) if kind == "large-pdf" else rng.randint(25000, 100000)
    return ("Invoice and statement", *with_attachment(rng, inner_type, inner, f"Invoice-{rng.randint(10000, 99999)}.pdf",
            "application/pdf", sc.pdf(size)))


def message(args):
    """The unsigned, the signed and the sealed form of message I."""
    i, recipient_domain, keys = args
    rng = random.Random(20261207 + i)
    sc.rng = rng  # scan-corpus's part builders draw from its module-level generator
    kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
    sender = SENDERS[i % len(SENDERS)]
    domain = f"{sender}.example"
    name = rng.choice(NAMES)
    address = f"{name.split()[0].lower()}@{domain}"
    subject, content_type, body = content(rng, kind)
    date = formatdate(1796000000 + i * 37, localtime=False)
    hop, first_hop = exchange_id(rng), exchange_id(rng)
    mid = f"<{hop.split('.')[0]}{rng.getrandbits(48):012X}@{hop}>"
    ip = f"198.51.100.{i % 250 + 1}"
    inner = (f"From: {name} <{address}>\r\nTo: Alice Smith <alice@{recipient_domain}>\r\nSubject: {subject}\r\n"
             f"Thread-Topic: {subject}\r\nThread-Index: {base64.b64encode(rng.randbytes(22)).decode()}\r\nDate: {date}\r\n"
             f"Message-ID: {mid}\r\nAccept-Language: en-US\r\nContent-Language: en-US\r\nX-MS-Has-Attach: {'yes' if 'pdf' in kind or kind == 'docx' else ''}\r\n"
             f"X-MS-TNEF-Correlator:\r\nx-ms-publictraffictype: Email\r\nx-ms-traffictypediagnostic: {hop.split('.')[0]}:EE_|{first_hop.split('.')[0]}:EE_\r\n"
             f"x-ms-office365-filtering-correlation-id: {rng.getrandbits(128):032x}\r\nx-ms-exchange-senderadcheck: 1\r\n"
             f"x-microsoft-antispam: BCL:0;ARA:13230040|376014|1800799024|366016|38070700018;\r\n"
             f"x-forefront-antispam-report: CIP:{ip};CTRY:NL;LANG:en;SCL:1;SRV:;IPV:NLI;SFV:NSPM;H:{first_hop};PTR:;CAT:NONE;SFS:(13230040)(376014);DIR:INB;\r\n"
             f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n")
    transport = (f"X-OriginatorOrg: {domain}\r\nX-MS-Exchange-CrossTenant-Network-Message-Id: {rng.getrandbits(128):032x}\r\n"
                 f"X-MS-Exchange-CrossTenant-originalarrivaltime: {date}\r\nX-MS-Exchange-CrossTenant-fromentityheader: Internet\r\n"
                 f"X-MS-Exchange-CrossTenant-id: {rng.getrandbits(128):032x}\r\nX-MS-Exchange-Transport-CrossTenantHeadersStamped: {hop.split('.')[0]}\r\n"
                 f"X-MS-Exchange-Organization-SCL: 1\r\nX-MS-Exchange-Organization-AuthSource: {first_hop}\r\nX-MS-Exchange-Organization-AuthAs: Anonymous\r\n")
    received_in = (f"Received: from mail.{domain} ({ip}) by {first_hop} (2603:10a6:20b:{rng.randint(16, 255):x}::{rng.randint(1, 99)}) "
                   f"with Microsoft SMTP Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.8207.17; {date}\r\n")
    received_out = (f"Received: from {first_hop} (2603:10a6:20b:{rng.randint(16, 255):x}::{rng.randint(1, 99)}) by {hop} "
                    f"(2603:10a6:10:{rng.randint(16, 255):x}::{rng.randint(1, 99)}) with Microsoft SMTP Server (version=TLS1_2, "
                    f"cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.8207.17; {date}\r\n")
    results = (f"spf=pass (sender IP is {ip}) smtp.mailfrom={domain}; dkim=pass (signature was verified) header.d={domain}; "
               f"dmarc=pass action=none header.from={domain}")
    spf = (f"Received-SPF: Pass (protection.outlook.com: domain of {domain} designates {ip} as permitted sender) "
           f"receiver=protection.outlook.com; client-ip={ip}; helo=mail.{domain}; pr=C\r\n")
    payload = (inner + transport + "\r\n" + body).encode()
    unsigned = (received_out + f"Authentication-Results: {results};compauth=pass reason=100\r\n" + spf + received_in).encode() + payload

    signature = dkim.sign(payload, DKIM_SELECTOR.encode(), domain.encode(), keys[domain], canonicalize=(b"relaxed", b"relaxed"),
                          include_headers=[b"from", b"to", b"subject", b"date", b"message-id", b"content-type", b"mime-version"])
    signed = (f"Authentication-Results: {EXO_AUTHSERV}; {results}; arc=none\r\n" + spf + received_in).encode() + signature + payload
    seal = dkim.arc_sign(signed, EXO_SELECTOR.encode(), EXO_DOMAIN.encode(), keys[EXO_DOMAIN], EXO_AUTHSERV.encode(),
                         include_headers=[b"from", b"date", b"subject", b"message-id", b"content-type", b"mime-version",
                                          b"x-ms-exchange-senderadcheck"],
                         timestamp=1796000000 + i * 37)
    if len(seal) != 3:
        raise RuntimeError(f"message {i}: arc_sign returned {len(seal)} headers")
    return i, unsigned, received_out.encode() + signed, received_out.encode() + b"".join(seal) + signed


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    out, count, recipient_domain = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    for sub in ("unsigned", "signed", "sealed", "keys"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    keys, zone = {}, ["$TTL 3600", txt("spf.protection.outlook.example", "v=spf1 ip4:127.0.0.0/8 -all")]
    for domain, selector in [(f"{s}.example", DKIM_SELECTOR) for s in SENDERS] + [(EXO_DOMAIN, EXO_SELECTOR)]:
        path = os.path.join(out, "keys", f"{domain}.pem")
        zone.append(txt(f"{selector}._domainkey.{domain}", f"v=DKIM1; k=rsa; p={keygen(path)}"))
        keys[domain] = open(path, "rb").read()
    for n, s in enumerate(SENDERS):
        zone.append(txt(f"{s}.example", "v=spf1 include:spf.protection.outlook.example -all"))
        zone.append(txt(f"_dmarc.{s}.example", f"v=DMARC1; p={['reject', 'quarantine', 'none'][n % 3]}; rua=mailto:dmarc@{s}.example"))
        zone.append(f"{s}.example. 3600 IN MX 10 mail.{s}.example.")
        zone.append(f"mail.{s}.example. 3600 IN A 127.0.0.1")
    with open(os.path.join(out, "zone.txt"), "w") as f:
        f.write("\n".join(zone) + "\n")
    with open(os.path.join(out, "dns.txt"), "w") as f:
        f.writelines(f"{name}\tTXT\t{value}\n" for name, value in TXT_RECORDS)
    with multiprocessing.Pool(os.cpu_count() or 2) as pool:
        for i, *forms in pool.imap_unordered(message, [(i, recipient_domain, keys) for i in range(count)], chunksize=8):
            for sub, data in zip(("unsigned", "signed", "sealed"), forms):
                with open(os.path.join(out, sub, f"{i:04d}.eml"), "wb") as f:
                    f.write(data)


if __name__ == "__main__":
    main()
