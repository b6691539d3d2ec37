#!/usr/bin/env python3
"""Checks that a relay sealed what it delivered: the ARC set it added is there and verifies.

    /usr/bin/python3 bench/arc-check.py ZONE_FILE DIR INSTANCE SAMPLE

DIR holds the delivered messages (smtp-sink -d files; the line ends may be LF). Every message must
carry exactly one ARC-Seal with i=INSTANCE in its header section; SAMPLE of them, spread over the
directory, must pass python3-dkim's arc_verify with a chain of INSTANCE sets, the keys read from
ZONE_FILE (the loopback DNS server's zone). Last line: delivered=N sealed=N sample=N verified=N;
exit code 1 when a message is not sealed or a sampled one does not verify.
"""
import os
import re
import sys

import dkim
from dnslib import QTYPE, RR


def zone_txt(path):
    records = {}
    for rr in RR.fromZone(open(path).read()):
        if rr.rtype == QTYPE.TXT:
            records.setdefault(str(rr.rname).rstrip(".").lower(), []).append(b"".join(rr.rdata.data))
    return records


def main(argv):
    if len(argv) != 5:
        sys.exit(__doc__)
    records = zone_txt(argv[1])
    directory, instance, sample = argv[2], int(argv[3]), int(argv[4])

    def dnsfunc(name, timeout=5):
        values = records.get(name.decode().rstrip(".").lower() if isinstance(name, bytes) else name.rstrip(".").lower())
        return values[0] if values else None

    files = sorted(os.path.join(directory, f) for f in os.listdir(directory))
    seal = re.compile(rb"^ARC-Seal:\s*i=(\d+)", re.I | re.M)
    sealed, failures = 0, []
    for f in files:
        header = open(f, "rb").read().replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
        instances = [int(i) for i in seal.findall(header)]
        if instances.count(instance) == 1:
            sealed += 1
        else:
            failures.append(f"{os.path.basename(f)}: ARC-Seal instances {instances}")
    step = max(1, len(files) // sample) if sample else 0
    chosen = files[::step][:sample] if step else []
    verified = 0
    for f in chosen:
        data = open(f, "rb").read().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        result, sets, reason = dkim.arc_verify(data, dnsfunc=dnsfunc)
        if result == b"pass" and len(sets) == instance:
            verified += 1
        else:
            failures.append(f"{os.path.basename(f)}: arc_verify {result!r} with {len(sets)} sets: {reason}")
    for line in failures[:10]:
        print(f"arc-check: {line}", file=sys.stderr)
    print(f"delivered={len(files)} sealed={sealed} sample={len(chosen)} verified={verified}")
    return 0 if sealed == len(files) and verified == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
