#!/usr/bin/env python3
"""An authoritative DNS server on loopback for the benchmarks (python3-dnslib), UDP and TCP.

    loopback-dns.py PORT ZONE_FILE

Answers from ZONE_FILE (zone-file syntax; long TXT records as several quoted strings of at most 255
characters). A name the zone lacks gets the records of "*." if the zone has that wildcard, else
NXDOMAIN. SIGUSR1 prints "queries=N", how many questions were answered so far; SIGTERM stops it.
"""
import signal
import sys
import threading

from dnslib import QTYPE, RCODE, RR
from dnslib.server import BaseResolver, DNSLogger, DNSServer

port, zonefile = int(sys.argv[1]), sys.argv[2]
RRS = RR.fromZone(open(zonefile).read())
NAMES = {rr.rname for rr in RRS}
WILDCARD = [rr for rr in RRS if str(rr.rname) == "*."]
queries = [0]


class Zone(BaseResolver):
    def resolve(self, request, handler):
        queries[0] += 1
        reply, q = request.reply(), request.q
        if q.qname in NAMES:
            rrs = [rr for rr in RRS if rr.rname == q.qname]
        elif WILDCARD:
            rrs = [RR(q.qname, rr.rtype, rr.rclass, rr.ttl, rr.rdata) for rr in WILDCARD]
        else:
            reply.header.rcode = RCODE.NXDOMAIN
            rrs = []
        for rr in rrs:
            if q.qtype in (rr.rtype, QTYPE.ANY):
                reply.add_answer(rr)
        reply.header.aa = 1
        return reply


servers = [DNSServer(Zone(), address="127.0.0.1", port=port, tcp=tcp,
                     logger=DNSLogger("-request,-reply,-truncated", prefix=False)) for tcp in (False, True)]
for s in servers:
    s.start_thread()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
signal.signal(signal.SIGUSR1, lambda *_: print("queries=%d" % queries[0], flush=True))
stop.wait()
