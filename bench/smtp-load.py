#!/usr/bin/env python3
"""SMTP senders for the benchmarks, loopback only, standard library only.

    smtp-load.py corpus    PORT DIR COUNT CONNECTIONS RCPT [KEY]
    smtp-load.py open-loop PORT FILE RATE SECONDS CONNECTIONS RCPT

corpus: sends COUNT messages over CONNECTIONS parallel sessions, the files of DIR (*.eml) in turn,
so that every file of a corpus is sent (smtp-source can only repeat one file). The envelope sender is
the address in each file's From header. With KEY, "X-Postern-Key: KEY" is put before each message, as
the Exchange Online rule adds it; the same bytes then go to Postern and to its peer. Last line:
sent=N failed=N seconds=S.

open-loop: starts transaction i at start + i / RATE whatever the replies so far (CONNECTIONS sessions
take the transactions in turn; one whose session is still busy starts late and is counted), for
SECONDS, and times each one from the end of DATA (the final "." CRLF written) to the 250 reply.
Last line: sent=N failed=N p50_ms=… p99_ms=… max_ms=… late=N max_start_lag_ms=… rate=…

Every transaction that is not answered 250 is a failure (printed on stderr); the exit code is 1 then.
"""
import glob
import os
import re
import socket
import sys
import threading
import time

LATE_MS = 5.0  # a transaction that starts this much after its slot is counted as late-started


def wire(data):
    """The message as it goes after DATA: CRLF line ends, dot-stuffed, ending with CRLF."""
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..")


def envelope_sender(data):
    header = data.split(b"\r\n\r\n", 1)[0]
    m = re.search(rb"^From:[^\r\n]*?<?([^\s<>\"]+@[^\s<>\"]+?)>?\s*$", header, re.M | re.I)
    return m.group(1).decode("ascii", "replace") if m else "sender@bench.test"


class Session:
    """One SMTP session; no pipelining, every command waits for its reply."""

    def __init__(self, port, helo="sender.bench.test"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        # The final "." goes in its own write: without NODELAY, Nagle would hold it for the body's ACK.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.expect(220, self.reply())
        self.expect(250, self.command(b"EHLO " + helo.encode()))

    def reply(self):
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("connection closed by the server")
            lines.append(line.rstrip(b"\r\n").decode("ascii", "replace"))
            if line[3:4] != b"-":
                return int(line[:3]), " | ".join(lines)

    def command(self, line):
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    @staticmethod
    def expect(code, reply):
        if reply[0] != code:
            raise RuntimeError(reply[1])

    def send(self, sender, rcpt, body):
        """One transaction; returns seconds from the end of DATA to the 250."""
        self.expect(250, self.command(b"MAIL FROM:<" + sender.encode() + b">"))
        self.expect(250, self.command(b"RCPT TO:<" + rcpt.encode() + b">"))
        self.expect(354, self.command(b"DATA"))
        self.sock.sendall(body)
        self.sock.sendall(b".\r\n")
        end_of_data = time.perf_counter()
        reply = self.reply()
        answered = time.perf_counter()
        self.expect(250, reply)
        return answered - end_of_data

    def close(self):
        try:
            self.command(b"QUIT")
        except OSError:
            pass
        self.sock.close()


class Counter:
    """Hands out transaction numbers to the sending threads."""

    def __init__(self, limit):
        self.next, self.limit, self.lock = 0, limit, threading.Lock()

    def take(self):
        with self.lock:
            if self.next >= self.limit:
                return None
            self.next += 1
            return self.next - 1


def run_threads(connections, work):
    failures = []

    def guarded():
        try:
            work()
        except Exception as e:  # one broken session is reported, the others go on
            failures.append(str(e))
            print(f"smtp-load: {e}", file=sys.stderr, flush=True)

    threads = [threading.Thread(target=guarded, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


def corpus(port, directory, count, connections, rcpt, key=None):
    files = sorted(glob.glob(os.path.join(directory, "*.eml")))
    if not files:
        sys.exit(f"smtp-load: no *.eml in {directory}")
    prefix = f"X-Postern-Key: {key}\r\n".encode() if key else b""
    messages = []
    for f in files:
        body = wire(open(f, "rb").read())
        messages.append((envelope_sender(body), prefix + body))
    counter, sent = Counter(count), []

    def work():
        session = Session(port)
        while (i := counter.take()) is not None:
            sender, body = messages[i % len(messages)]
            session.send(sender, rcpt, body)
            sent.append(i)
        session.close()

    start = time.perf_counter()
    failures = run_threads(connections, work)
    print(f"sent={len(sent)} failed={count - len(sent)} seconds={time.perf_counter() - start:.2f}", flush=True)
    return 1 if failures or len(sent) != count else 0


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))] if sorted_values else 0.0


def open_loop(port, file, rate, seconds, connections, rcpt):
    body = wire(open(file, "rb").read())
    sender = envelope_sender(body)
    total = int(rate * seconds)
    counter, latencies, lags = Counter(total), [], []
    sessions = [Session(port) for _ in range(connections)]  # connected before the clock starts
    pool, pool_lock = list(sessions), threading.Lock()
    start = time.perf_counter() + 0.2

    def work():
        with pool_lock:
            session = pool.pop()
        while (i := counter.take()) is not None:
            slot = start + i / rate
            wait = slot - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            lags.append(time.perf_counter() - slot)
            latencies.append(session.send(sender, rcpt, body))
        session.close()

    failures = run_threads(connections, work)
    elapsed = time.perf_counter() - start
    ms = sorted(v * 1000 for v in latencies)
    late = sum(1 for lag in lags if lag * 1000 > LATE_MS)
    print(f"sent={len(ms)} failed={total - len(ms)} p50_ms={percentile(ms, 50):.2f} p99_ms={percentile(ms, 99):.2f} "
          f"max_ms={(ms[-1] if ms else 0):.2f} late={late} max_start_lag_ms={max(lags, default=0) * 1000:.1f} "
          f"rate={len(ms) / elapsed:.1f}", flush=True)
    return 1 if failures or len(ms) != total else 0


def main(argv):
    if len(argv) >= 7 and argv[1] == "corpus":
        return corpus(int(argv[2]), argv[3], int(argv[4]), int(argv[5]), argv[6], argv[7] if len(argv) > 7 else None)
    if len(argv) == 8 and argv[1] == "open-loop":
        return open_loop(int(argv[2]), argv[3], float(argv[4]), float(argv[5]), int(argv[6]), argv[7])
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
