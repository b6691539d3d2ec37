#!/usr/bin/python3
"""Writes the corpus of mail as Exchange Online hands it to Postern, in three forms, and the DNS records it needs.

    /usr/bin/python3 bench/corpus/exo-corpus.py [--lf] OUT_DIR

The ten messages of bench/scan-corpus.py (text, HTML newsletters, PDF, zip, Office attachments; 2-60 KB),
each written three times, CRLF line ends as they arrive over SMTP (LF with --lf, for smtp-source -F, which adds
the CR itself; the signatures hold either way, since they are over CRLF):

  OUT_DIR/unsigned/NN-name.eml  as Exchange Online relays mail nobody signed: the sender's Received line,
                                the front end's (which Postern judges SPF for), Exchange Online's internal hops,
                                its Authentication-Results, and the X-MS-Exchange-* / X-Forefront-* / X-Microsoft-*
                                headers it adds (about 4 KB of them, as real mail carries).
  OUT_DIR/signed/NN-name.eml    the same, DKIM-signed by the sender domain (d=partner.example s=selector1,
                                rsa-sha256 2048-bit, relaxed/relaxed) before it reached Exchange Online.
  OUT_DIR/sealed/NN-name.eml    signed, plus the i=1 ARC set Exchange Online adds to mail it sends out through a
                                connector (d=microsoft.com s=arcselector10001, its AMS over From, Date, Subject,
                                Message-ID, Content-Type, MIME-Version and the X-MS-Exchange-AntiSpam-MessageData
                                headers), so a sealer downstream adds i=2.
  OUT_DIR/dns.txt               the records the checks ask for, one per line: NAME<TAB>TXT<TAB>VALUE (the DKIM and
                                ARC keys, partner.example's SPF record allowing 203.0.113.5, its DMARC record p=reject).
  OUT_DIR/keys/*.pem            the two private keys (made with openssl on each run), for anyone who wants to sign more.

Signing is python3-dkim's (dkimpy), an implementation independent of Postern's MimeKit. The envelope to send the
messages with: MAIL FROM:<alex@partner.example> RCPT TO:<alice@bench.test>. Deterministic apart from the keys and
the signatures. Needs Debian's python3-dkim and python3-authres (hence /usr/bin/python3) and openssl.
"""
import importlib.util
import os
import subprocess
import sys

import dkim

HERE = os.path.dirname(os.path.abspath(__file__))
SENDER_DOMAIN, SENDER_SELECTOR = b"partner.example", b"selector1"
ARC_DOMAIN, ARC_SELECTOR, ARC_AUTHSERV = b"microsoft.com", b"arcselector10001", b"mx.microsoft.com"
CLIENT_IP = "203.0.113.5"
DATE = "Mon, 23 Nov 2026 09:14:07 +0000"
# Exchange Online's ARC-Message-Signature covers these (as seen on mail it sends through outbound connectors).
EXO_AMS_HEADERS = [b"from", b"date", b"subject", b"message-id", b"content-type", b"mime-version",
                   b"x-ms-exchange-antispam-messagedata-chunkcount", b"x-ms-exchange-antispam-messagedata-0"]
SENDER_DKIM_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type"]


def load_scan_corpus():
    spec = importlib.util.spec_from_file_location("scan_corpus", os.path.join(HERE, "..", "scan-corpus.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rsa_key(path):
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", path, "2048"], check=True, capture_output=True)
    with open(path, "rb") as f:
        private = f.read()
    der = subprocess.run(["openssl", "rsa", "-in", path, "-pubout", "-outform", "DER"], check=True, capture_output=True).stdout
    import base64
    return private, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


def fold_base64(name, rng, length):
    """A long opaque header value folded as Exchange Online folds them (its anti-spam data is base64)."""
    import base64
    value = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(length))).decode("ascii")
    lines = [value[i:i + 76] for i in range(0, len(value), 76)]
    return f"{name}: " + "\r\n\t".join(lines) + "\r\n"


def guid(rng):
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def sender_received(rng):
    return (f"Received: from [10.20.30.{rng.randint(2, 250)}] (unknown [10.20.30.41])\r\n"
            f"\tby mail.partner.example (Postfix) with ESMTPSA id 4Zk{rng.getrandbits(40):010X}\r\n"
            f"\tfor <alice@bench.test>; {DATE}\r\n")


def exo_inbound_headers(rng, signed):
    """What Exchange Online's front end and mailbox servers add on receipt (newest first)."""
    network_id = guid(rng)
    dkim_result = "dkim=pass (signature was verified) header.d=partner.example" if signed else "dkim=none (message not signed) header.d=none"
    return (
        "X-MS-Exchange-AntiSpam-MessageData-ChunkCount: 1\r\n"
        + fold_base64("X-MS-Exchange-AntiSpam-MessageData-0", rng, 1100)
        + fold_base64("X-Microsoft-Antispam-Message-Info", rng, 1500)
        + "X-Microsoft-Antispam: BCL:0;ARA:13230040|1800799024|376014|82310400026|69100299015;\r\n"
        + f"X-Forefront-Antispam-Report: CIP:{CLIENT_IP};CTRY:NL;LANG:en;SCL:1;SRV:;IPV:NLI;SFV:NSPM;H:mail.partner.example;\r\n"
          "\tPTR:mail.partner.example;CAT:NONE;SFS:(13230040)(1800799024)(376014)(82310400026)(69100299015);DIR:INB;\r\n"
        + f"X-MS-Office365-Filtering-Correlation-Id: {network_id}\r\n"
        + "X-MS-TrafficTypeDiagnostic: DB5PEPF00014B89:EE_|AS8PR04MB8247:EE_\r\n"
        + "X-MS-PublicTrafficType: Email\r\n"
        + "X-MS-Exchange-EOPDirect: true\r\n"
        + "Received: from DB5PEPF00014B89.eurprd02.prod.outlook.com (2603:10a6:10:1cd::11) by\r\n"
          " AS8PR04MB8247.eurprd04.prod.outlook.com (2603:10a6:20b:3e2::9) with Microsoft SMTP\r\n"
          " Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.8207.14; "
        + DATE + "\r\n"
        + f"Authentication-Results: spf=pass (sender IP is {CLIENT_IP})\r\n"
          f" smtp.mailfrom=partner.example; {dkim_result};dmarc=pass action=none\r\n"
          " header.from=partner.example;compauth=pass reason=100\r\n"
        + f"Received-SPF: Pass (protection.outlook.com: domain of partner.example designates\r\n"
          f" {CLIENT_IP} as permitted sender) receiver=protection.outlook.com;\r\n"
          f" client-ip={CLIENT_IP}; helo=mail.partner.example; pr=C\r\n"
        + f"Received: from mail.partner.example ({CLIENT_IP}) by\r\n"
          " DB5PEPF00014B89.mail.protection.outlook.com (10.167.8.199) with Microsoft SMTP\r\n"
          " Server (version=TLS1_3, cipher=TLS_AES_256_GCM_SHA384) id 15.20.8207.15 via Frontend\r\n"
          " Transport; " + DATE + "\r\n"
    ), network_id


def exo_outbound_headers(rng, network_id):
    """What Exchange Online adds when the message leaves through the connector to Postern (newest first)."""
    return (
        f"X-MS-Exchange-CrossTenant-OriginalArrivalTime: 23 Nov 2026 09:14:08.1234 (UTC)\r\n"
        "X-MS-Exchange-CrossTenant-FromEntityHeader: Internet\r\n"
        f"X-MS-Exchange-CrossTenant-Id: {guid(rng)}\r\n"
        f"X-MS-Exchange-CrossTenant-Network-Message-Id: {network_id}\r\n"
        "X-MS-Exchange-CrossTenant-AuthSource: DB5PEPF00014B89.eurprd02.prod.outlook.com\r\n"
        "X-MS-Exchange-CrossTenant-AuthAs: Anonymous\r\n"
        "X-MS-Exchange-Transport-CrossTenantHeadersStamped: AS8PR04MB8247\r\n"
        "Received: from AS8PR04MB8247.eurprd04.prod.outlook.com (2603:10a6:20b:3e2::9) by\r\n"
        " DU0PR04MB9417.eurprd04.prod.outlook.com (2603:10a6:10:358::12) with Microsoft SMTP\r\n"
        " Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.20.8207.14; "
        + DATE + "\r\n"
    )


def main():
    args = sys.argv[1:]
    lf = "--lf" in args
    args = [a for a in args if a != "--lf"]
    if len(args) != 1:
        sys.exit(__doc__)
    out = args[0]
    for sub in ("unsigned", "signed", "sealed", "keys"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    sender_key, sender_record = rsa_key(os.path.join(out, "keys", "partner.example-selector1.pem"))
    arc_key, arc_record = rsa_key(os.path.join(out, "keys", "microsoft.com-arcselector10001.pem"))
    with open(os.path.join(out, "dns.txt"), "w") as f:
        f.write(f"selector1._domainkey.partner.example\tTXT\t{sender_record}\n")
        f.write(f"arcselector10001._domainkey.microsoft.com\tTXT\t{arc_record}\n")
        f.write("partner.example\tTXT\tv=spf1 ip4:203.0.113.0/24 -all\n")
        f.write("_dmarc.partner.example\tTXT\tv=DMARC1; p=reject; rua=mailto:dmarc@partner.example\n")

    records = {b"selector1._domainkey.partner.example.": sender_record.encode(),
               b"arcselector10001._domainkey.microsoft.com.": arc_record.encode()}

    def txt(name, timeout=5):
        return records.get(name if name.endswith(b".") else name + b".")

    scan = load_scan_corpus()
    rng = scan.rng
    for name, text in scan.corpus():
        original = (sender_received(rng) + text).encode("utf-8")
        signature = dkim.sign(original, SENDER_SELECTOR, SENDER_DOMAIN, sender_key, canonicalize=(b"relaxed", b"relaxed"),
                              include_headers=SENDER_DKIM_HEADERS)
        seed = rng.getrandbits(32)
        for form in ("unsigned", "signed", "sealed"):
            rng.seed(seed)  # the same Exchange Online headers on all three forms of a message
            signed = form != "unsigned"
            inbound, network_id = exo_inbound_headers(rng, signed)
            message = inbound.encode("ascii") + (signature if signed else b"") + original
            if form == "sealed":
                # dkimpy seals the results of the Authentication-Results stamped with the sealer's authserv-id.
                results = (f"Authentication-Results: {ARC_AUTHSERV.decode()}; spf=pass (sender ip is {CLIENT_IP})"
                           " smtp.rcpttodomain=bench.test smtp.mailfrom=partner.example;\r\n dmarc=pass (p=reject sp=reject pct=100)"
                           " action=none header.from=partner.example;\r\n dkim=pass (signature was verified)"
                           " header.d=partner.example; arc=none\r\n").encode("ascii")
                arc_set = dkim.arc_sign(results + message, ARC_SELECTOR, ARC_DOMAIN, arc_key, ARC_AUTHSERV,
                                        include_headers=EXO_AMS_HEADERS, timestamp=1795425248)
                if len(arc_set) != 3:
                    sys.exit(f"{name}: dkimpy made no ARC set")
                message = b"".join(arc_set) + message
            message = exo_outbound_headers(rng, network_id).encode("ascii") + message
            # What the gateway bench relies on: every signature in the corpus verifies (dkimpy's own check).
            if signed and not dkim.verify(message, dnsfunc=txt, minkey=1024):
                sys.exit(f"{name}: the DKIM signature does not verify")
            if form == "sealed" and dkim.arc_verify(message, dnsfunc=txt)[0] != b"pass":
                sys.exit(f"{name}: the ARC set does not verify")
            with open(os.path.join(out, form, name + ".eml"), "wb") as f:
                f.write(message.replace(b"\r\n", b"\n") if lf else message)


if __name__ == "__main__":
    main()
