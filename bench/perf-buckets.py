#!/usr/bin/env python3
"""Where every sampled millisecond of a Postern perf profile goes, grouped by what the code was doing.

  perf script -i perf.data -F tid,period,ip,sym,dso | bench/perf-buckets.py CPU_MS_PER_MESSAGE

Each sample is given to one bucket: the leafmost frame of its stack that a rule below names (so a memmove
under the MIME parser counts as MIME parsing, and the kernel under a socket write as socket I/O). A sample
no rule names (the runtime's own threads: the GC, the thread pool's dispatch between work items, the JIT) is
"runtime, no owner". Each bucket is also split by stage: the leafmost frame naming one of the relay's stages,
so the MIME parse the scanner does and the one delivery does show apart. Shares turn into CPU ms per message
by the run's measured CPU per message. Every sample is counted once; the lines add up to the whole.
"""
import collections
import re
import sys

# (pattern on the frame's symbol, bucket). Checked leaf to root; the first frame any pattern matches decides.
BUCKETS = [
    (r"NativeRsaSigner|RSA(OpenSsl|Wrapper)?.*::(Sign|TrySign)", "RSA signing (ARC seal)"),
    (r"RsaPublicKey|::VerifyHash|RSA.*::Verify", "RSA verification"),
    (r"ArcSealer|PosternArcSigner|MimeKit\.Cryptography\.ArcSigner|SigningView|DkimSigner", "ARC seal: headers, body hash"),
    (r"DkimMessageHashes|DkimChecker|ArcChainVerifier|MimeKit\.Cryptography\.(Dkim|Arc)", "DKIM / ARC verification: hashing, parsing"),
    (r"Authentication\.Spf|SpfChecker", "SPF"),
    (r"Dmarc|PublicSuffix", "DMARC"),
    (r"DnsClient|DnsClientResolver|DkimKeyCache|DnsDkimKeyLocator", "DNS lookups (cache)"),
    (r"Postern\.Core\.Authentication", "authentication: other"),
    (r"MimeKit\.MimeParser|MimeKit\.MimeMessage::Load|MimeKit\.MimeEntity::Load|MimeMessageBytes", "MIME parse"),
    (r"MimeKit\.(Encodings|IO\.Filters)", "MIME decode (base64, QP, filters)"),
    (r"Postern\.Core\.Scanning\.Engines\.", None),  # the engine's own name
    (r"Postern\.Core\.Scanning", "scanning: pipeline"),
    (r"MimeKit", "MimeKit: other"),
    (r"Microsoft\.Data\.Sqlite|SQLitePCL|libe_sqlite3|libsqlite3|Postern\.Core\.Trac", "SQLite: trace and state"),
    (r"Postern\.Core\.Spool", "spool: write, fsync, read"),
    (r"Postern\.Core\.(Delivery|Queue)", "delivery: queue, SMTP client"),
    (r"MailKit", "delivery: MailKit"),
    (r"Postern\.Core\.Relay", "relay stages: cleanup, dispatch, writer"),
    (r"Postern\.Smtp", "SMTP server: receive, parse, reply"),
    (r"System\.Net\.Security|SslStream|libssl", "TLS"),
    (r"System\.Net\.Sockets|System\.IO\.Pipelines", "socket I/O, pipes"),
    (r"Postern", "Postern: other"),
    (r"System\.Text\.RegularExpressions", "regex (unowned)"),
]
STAGES = [
    (r"SmtpDeliveryAgent|Postern\.Core\.Delivery", "delivery"),
    (r"ScanStage|Postern\.Core\.Scanning", "scan"),
    (r"AuthenticateStage|EarlyKeyCheck", "authenticate"),
    (r"TenantLimits", "tenant limits"),
    (r"CleanupStage", "cleanup"),
    (r"DispatchStage", "dispatch"),
    (r"Postern\.Core\.Spool", "spool"),
    (r"Postern\.Core\.Trac", "trace"),
    (r"RelayMessageWriter", "relay writer"),
    (r"Postern\.Smtp", "smtp receive"),
]
BUCKETS = [(re.compile(p), b) for p, b in BUCKETS]
STAGES = [(re.compile(p), s) for p, s in STAGES]
ENGINE = re.compile(r"Postern\.Core\.Scanning\.Engines\.(\w+)")
# Leaf libraries for a sample no frame of which a rule names (their stacks often do not unwind past them).
UNOWNED = [
    ("libcrypto", "OpenSSL, stack not unwound (RSA, SHA-256)"),
    ("libssl", "OpenSSL, stack not unwound (TLS)"),
    ("kernel", "kernel, no managed caller (thread pool waits, socket events)"),
    ("libcoreclr", "runtime, no owner (GC, thread pool, stubs)"),
    ("libclrjit", "runtime, no owner (JIT)"),
    ("libc.so", "libc, no managed caller"),
    ("libSystem.Native", "System.Native, no managed caller"),
]


def classify(frames):
    """(bucket, stage, the frame that decided the bucket)."""
    bucket = stage = owner = None
    for sym, _dso in frames:  # leaf first
        if bucket is None:
            for pattern, name in BUCKETS:
                if pattern.search(sym):
                    if name is None:
                        engine = ENGINE.search(sym)
                        name = f"scan engine: {engine.group(1) if engine else 'other'}"
                    bucket, owner = name, sym
                    break
        if stage is None:
            for pattern, name in STAGES:
                if pattern.search(sym):
                    stage = name
                    break
        if bucket and stage:
            break
    if bucket is None:
        dso = frames[0][1] if frames else ""
        bucket = next((name for lib, name in UNOWNED if lib in dso), f"no owner, leaf in {dso.rsplit('/', 1)[-1] or '?'}")
        owner = frames[-1][0] if frames else "?"
    return bucket, stage or "-", owner


def leaf_kind(frames):
    sym, dso = frames[0] if frames else ("", "")
    if "kernel" in dso:
        return "kernel"
    if "libcoreclr" in dso or "libclrjit" in dso:
        return "runtime"
    return "user"


def samples(lines):
    frames, period = [], 1
    for line in lines:
        if not line.strip():
            if frames:
                yield period, frames
            frames, period = [], 1
            continue
        if not line[0].isspace():
            parts = line.split()
            period = int(parts[-1]) if parts and parts[-1].isdigit() else 1
            continue
        m = re.match(r"\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)\s*$", line)
        if m:
            frames.append((m.group(1), m.group(2)))
    if frames:
        yield period, frames


def main():
    cpu = float(sys.argv[1])
    total = 0
    by_bucket = collections.Counter()
    by_stage = collections.defaultdict(collections.Counter)
    by_kind = collections.defaultdict(collections.Counter)
    leaves = collections.defaultdict(collections.Counter)
    owners = collections.defaultdict(collections.Counter)
    for period, frames in samples(sys.stdin):
        bucket, stage, owner = classify(frames)
        total += period
        by_bucket[bucket] += period
        by_stage[bucket][stage] += period
        by_kind[bucket][leaf_kind(frames)] += period
        leaf = frames[0][0] if frames[0][0] != "[unknown]" else frames[0][1].rsplit("/", 1)[-1]
        leaves[bucket][re.sub(r"\[Optimized\]|\(.*", "", leaf)[-80:]] += period
        owners[bucket][re.sub(r"\[Optimized\]|\(.*|^instance |^[\w.`\[\]<>!,&]+ \[[\w.]+\] ", "", owner)[-100:]] += period
    if not total:
        sys.exit("no samples")
    ms = lambda n: n * cpu / total
    print(f"{total} sample periods; {cpu:.2f} ms CPU per message in all; each bucket: ms/msg, share,"
          " of which kernel / runtime (GC, JIT) at the leaf; by stage; the frames that put samples there; the hottest leaves")
    for bucket, n in by_bucket.most_common():
        kind = by_kind[bucket]
        print(f"{ms(n):6.2f} ms {100 * n / total:5.1f}%  {bucket}   (kernel {ms(kind['kernel']):.2f}, runtime {ms(kind['runtime']):.2f})")
        print("           stages: " + ", ".join(f"{s} {ms(c):.2f}" for s, c in by_stage[bucket].most_common(5)))
        print("           deciding frames: " + "; ".join(f"{o} {ms(c):.2f}" for o, c in owners[bucket].most_common(4)))
        print("           leaves: " + "; ".join(f"{l} {ms(c):.2f}" for l, c in leaves[bucket].most_common(4)))


if __name__ == "__main__":
    main()
