#!/usr/bin/env bash
# Memory held by idle SMTP sessions: opens BENCH_IDLE_CONNECTIONS (1000) connections to Postern,
# reads each greeting, keeps them open and prints Postern's resident memory (VmRSS).
# Last line: postern_rss_mb_1000_idle=…   (with the baseline before connecting on the line above)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

connections=${BENCH_IDLE_CONNECTIONS:-1000}
command -v dotnet >/dev/null || die "dotnet is missing"
ensure_postern_built
ulimit -n 65536 2>/dev/null || true

rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

port=$(free_port)
data="$bench_dir/postern-data"; mkdir -p "$data"
postern_config "$bench_dir/postern.json" "$port"
postern_tenant "$data" bench.test "$(free_port)" >/dev/null
postern_start "$data" "$bench_dir/postern.json" "$port" "$bench_dir/postern.log"

# One session first so the baseline includes a warmed-up SMTP path.
/usr/bin/python3 - "$port" <<'PY' || die "warm-up session failed"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
f = s.makefile("rb")
assert f.readline().startswith(b"220")
s.sendall(b"EHLO warmup.test\r\n")
while not f.readline().startswith(b"250 "): pass
s.sendall(b"QUIT\r\n"); f.readline()
PY
baseline=$(rss_mb "$postern_pid")

cat >"$bench_dir/hold.py" <<'PY'
import signal, socket, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.socket()
    s.bind(("127.0.0.%d" % (1 + i % 8), 0))   # spread over source addresses: per-IP limits stay out of it
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    socks.append(s)
greeted = 0
for s in socks:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = s.recv(1024)
        if not chunk:
            break
        data += chunk
    greeted += data.startswith(b"220")
print("greeted", greeted, flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.pause()
PY
/usr/bin/python3 "$bench_dir/hold.py" "$connections" "$port" >"$bench_dir/hold.out" 2>&1 &
holder=$!
started_pids+=("$holder")
deadline=$(( $(date +%s) + 120 ))
until grep -q '^greeted' "$bench_dir/hold.out" 2>/dev/null; do
    kill -0 "$holder" 2>/dev/null || { cat "$bench_dir/hold.out" >&2; die "connection holder failed"; }
    [ "$(date +%s)" -lt "$deadline" ] || die "$connections connections not greeted within 120 s"
    sleep 0.1
done
greeted=$(awk '/^greeted/ { print $2 }' "$bench_dir/hold.out")
[ "$greeted" -eq "$connections" ] || log "warning: only $greeted of $connections connections got a 220 greeting"
# Let allocations from the burst of accepts settle before reading VmRSS (a bounded measurement wait).
sleep 2
open=$(ls "/proc/$postern_pid/fd" | wc -l)
rss=$(rss_mb "$postern_pid")
log "postern pid $postern_pid: $open open descriptors, $greeted greeted connections"
echo "postern_rss_mb_baseline=$baseline"
echo "postern_rss_mb_${connections}_idle=$rss"
