#!/usr/bin/env bash
# Relay throughput, latency and delivery isolation, Postern against Postfix, same machine, same run:
#   1. throughput: smtp-source → Postern → smtp-sink, then smtp-source → Postfix (plain relay, queue on the
#      same disk, relayhost → smtp-sink) → smtp-sink. Each rate is messages/s from the first connection
#      until the sink has received every message.
#   2. latency: right after each throughput run, on the same server, bench/smtp-load.py sends open-loop at
#      half that server's measured rate (a new transaction on schedule whatever the replies, over
#      BENCH_LATENCY_CONNECTIONS sessions) for BENCH_LATENCY_SECONDS, and times each transaction from the
#      end of DATA (the final "." CRLF) to the 250 reply: p50/p99/max, and how many started late.
#   3. noisy neighbour (Postern only): two tenants in one data dir. Tenant B's BENCH_NEIGHBOUR_MESSAGES
#      to B's smtp-sink alone, timed from the first connection until the sink has them all; then tenant A,
#      whose MTA is a tarpit (bench/tarpit.py: accepts TCP, never answers), gets a backlog of
#      BENCH_NEIGHBOUR_BACKLOG messages; then B's messages again, timed the same way.
# Both do the same work: authenticate, queue durably, relay. Postern's scanning and ARC sealing are off
# here (BENCH_SCANNING=true / BENCH_SEAL=true turn them on); bench/gateway-bench.sh measures the production path.
# Last line: postern_msgs_per_s=… postfix_msgs_per_s=… ratio=…   (ratio = Postern / Postfix)
#   postern_p50_ms=… postern_p99_ms=… postern_max_ms=… postern_late=… (and postfix_… the same)
#   neighbour_alone_s=… neighbour_hung_s=… neighbour_ratio=…   (hung_s is "none" and the ratio "inf" when
#   B's messages were not all delivered within BENCH_NEIGHBOUR_TIMEOUT; the log line says how many were)
#
# Environment: BENCH_MESSAGES (20000), BENCH_SESSIONS (20), BENCH_SIZE_KB (10),
#   BENCH_LATENCY_SECONDS (30), BENCH_LATENCY_CONNECTIONS (20),
#   BENCH_NEIGHBOUR_MESSAGES (200), BENCH_NEIGHBOUR_BACKLOG (300), BENCH_NEIGHBOUR_TIMEOUT seconds (60),
#   BENCH_TIMEOUT seconds per run (900), BENCH_KEEP=1 to keep files.
# Quick check: BENCH_MESSAGES=2000 BENCH_LATENCY_SECONDS=10 bash bench/relay-bench.sh
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

messages=${BENCH_MESSAGES:-20000}
sessions=${BENCH_SESSIONS:-20}
size_kb=${BENCH_SIZE_KB:-10}
run_timeout=${BENCH_TIMEOUT:-900}
latency_seconds=${BENCH_LATENCY_SECONDS:-30}
latency_connections=${BENCH_LATENCY_CONNECTIONS:-20}
neighbour_messages=${BENCH_NEIGHBOUR_MESSAGES:-200}
neighbour_backlog=${BENCH_NEIGHBOUR_BACKLOG:-300}
neighbour_timeout=${BENCH_NEIGHBOUR_TIMEOUT:-60}

for tool in smtp-source smtp-sink postfix dotnet /usr/bin/python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (bash scripts/test.sh installs the Debian packages)"
done
ensure_postern_built
log "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
ulimit -n 65536 2>/dev/null || true

# measure NAME PORT SINK_OUT MESSAGE_FILE: sets rate (messages/s). Runs in this shell so cleanup sees its pids.
measure() {
    local name=$1 port=$2 sink_out=$3 file=$4 start end count deadline source_pid rc
    log "$name: $messages messages of ${size_kb} kB over $sessions sessions"
    start=$(now)
    smtp-source -s "$sessions" -m "$messages" -F "$file" -f sender@external.test -t user@bench.test "127.0.0.1:$port" \
        >"$bench_dir/$name-source.log" 2>&1 &
    source_pid=$!
    started_pids+=("$source_pid")
    deadline=$(( $(date +%s) + run_timeout ))
    while :; do
        count=$(sink_count "$sink_out")
        [ "$count" -ge "$messages" ] && break
        if ! kill -0 "$source_pid" 2>/dev/null; then
            wait "$source_pid"; rc=$?
            [ "$rc" -eq 0 ] || { cat "$bench_dir/$name-source.log" >&2; die "$name: smtp-source failed (exit $rc)"; }
        fi
        [ "$(date +%s)" -lt "$deadline" ] || die "$name: only $count of $messages messages at the sink after $run_timeout s"
        sleep 0.05
    done
    end=$(now)
    wait "$source_pid" 2>/dev/null
    log "$name: $messages messages at the sink $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }') s after the first connection"
    rate=$(awk -v n="$messages" -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", n / (e - s) }')
}

# latency NAME PORT PEAK_RATE: open-loop at half PEAK_RATE; sets p50, p99, max_ms, late.
latency() {
    local name=$1 port=$2 rate out="$bench_dir/$1-latency.out"
    rate=$(awk -v r="$3" 'BEGIN { printf "%.1f", r / 2 }')
    log "$name: open-loop at $rate msg/s (half of $3) for $latency_seconds s over $latency_connections sessions"
    /usr/bin/python3 "$repo/bench/smtp-load.py" open-loop "$port" "$message" "$rate" "$latency_seconds" "$latency_connections" \
        user@bench.test >"$out" 2>"$bench_dir/$name-latency.err" ||
        { cat "$bench_dir/$name-latency.err" "$out" >&2; die "$name: open-loop sender failed"; }
    log "$name: $(tail -1 "$out")"
    p50=$(field p50_ms "$out"); p99=$(field p99_ms "$out"); max_ms=$(field max_ms "$out"); late=$(field late "$out")
}

# field NAME FILE: the value of NAME=… on FILE's last line.
field() { tail -1 "$2" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }

message="$bench_dir/message.txt"

# --- Postern -------------------------------------------------------------------------------
sink1=$(free_port); postern_port=$(free_port)
sink_start "$sink1" "$bench_dir/postern-sink.out"
data="$bench_dir/postern-data"; mkdir -p "$data"
postern_config "$bench_dir/postern.json" "$postern_port"
key=$(postern_tenant "$data" bench.test "$sink1")
message_file "$message" "$size_kb" "$key"
postern_start "$data" "$bench_dir/postern.json" "$postern_port" "$bench_dir/postern.log"
measure postern "$postern_port" "$bench_dir/postern-sink.out" "$message"
postern_rate=$rate
latency postern "$postern_port" "$postern_rate"
postern_p50=$p50 postern_p99=$p99 postern_max=$max_ms postern_late=$late
kill -TERM "$postern_pid"; wait_gone "$postern_pid" 20 || kill -KILL "$postern_pid"
kill -TERM "$sink_pid"

# --- Postfix -------------------------------------------------------------------------------
sink2=$(free_port); postfix_port=$(free_port)
sink_start "$sink2" "$bench_dir/postfix-sink.out"
postfix_instance "$bench_dir/postfix" "$postfix_port" "$sink2"
measure postfix "$postfix_port" "$bench_dir/postfix-sink.out" "$message"
postfix_rate=$rate
latency postfix "$postfix_port" "$postfix_rate"
postfix_p50=$p50 postfix_p99=$p99 postfix_max=$max_ms postfix_late=$late
postfix_stop "$bench_dir/postfix"
kill -TERM "$sink_pid"

# --- Noisy neighbour (Postern) ----------------------------------------------------------------
# b_round FIRST: sends B's messages and waits until B's sink has FIRST + that many; sets b_seconds
# (empty when the deadline passed first).
b_round() {
    local target=$(( $1 + neighbour_messages )) start count deadline
    start=$(now)
    timeout "$neighbour_timeout" /usr/bin/python3 "$repo/bench/smtp-load.py" corpus "$neighbour_port" "$bench_dir/tenant-b" \
        "$neighbour_messages" 10 user@b.bench.test >"$bench_dir/neighbour-b-$1.log" 2>&1 ||
        { tail -5 "$bench_dir/neighbour-b-$1.log" >&2; die "tenant B's messages were not all accepted within $neighbour_timeout s"; }
    deadline=$(( $(date +%s) + neighbour_timeout ))
    b_seconds=
    while :; do
        count=$(sink_count "$bench_dir/neighbour-sink.out")
        [ "$count" -ge "$target" ] && { b_seconds=$(awk -v s="$start" -v e="$(now)" 'BEGIN { printf "%.2f", e - s }'); break; }
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "neighbour: only $(( count - $1 )) of B's $neighbour_messages messages at B's sink after $neighbour_timeout s"
            break
        fi
        sleep 0.05
    done
}
tarpit_port=$(free_port); sink3=$(free_port); neighbour_port=$(free_port)
/usr/bin/python3 "$repo/bench/tarpit.py" "$tarpit_port" >"$bench_dir/tarpit.out" 2>&1 &
started_pids+=("$!")
wait_port "$tarpit_port" 15 "tarpit"
sink_start "$sink3" "$bench_dir/neighbour-sink.out"
data="$bench_dir/neighbour-data"; mkdir -p "$data"
postern_config "$bench_dir/neighbour.json" "$neighbour_port"
key_a=$(postern_tenant "$data" a.bench.test "$tarpit_port" tenant-a)
key_b=$(postern_tenant "$data" b.bench.test "$sink3" tenant-b)
mkdir -p "$bench_dir/tenant-a" "$bench_dir/tenant-b"
message_file "$bench_dir/tenant-a/message.eml" "$size_kb" "$key_a"
message_file "$bench_dir/tenant-b/message.eml" "$size_kb" "$key_b"
postern_start "$data" "$bench_dir/neighbour.json" "$neighbour_port" "$bench_dir/neighbour-postern.log"
log "neighbour: tenant B alone, $neighbour_messages messages"
b_round 0
[ -n "$b_seconds" ] || die "neighbour: tenant B's messages were not delivered even without A's backlog"
alone_s=$b_seconds
log "neighbour: B alone: $alone_s s; now $neighbour_backlog messages for tenant A, whose MTA never answers"
# A per-tenant limit may refuse part of A's backlog (451 for A only): what was accepted is the backlog.
timeout "$neighbour_timeout" /usr/bin/python3 "$repo/bench/smtp-load.py" corpus "$neighbour_port" "$bench_dir/tenant-a" \
    "$neighbour_backlog" 10 user@a.bench.test >"$bench_dir/neighbour-a.log" 2>&1
log "neighbour: A's backlog: $(tail -1 "$bench_dir/neighbour-a.log"); the tarpit has accepted $(tail -1 "$bench_dir/tarpit.out" | cut -d= -f2) connections; B again"
b_round "$neighbour_messages"
if [ -n "$b_seconds" ]; then
    hung_s=$b_seconds
    neighbour_ratio=$(awk -v a="$hung_s" -v b="$alone_s" 'BEGIN { printf "%.2f", a / b }')
else
    hung_s=none neighbour_ratio=inf
fi
log "neighbour: B with A hung: ${hung_s} s (alone $alone_s s), ratio $neighbour_ratio"

log "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
ratio=$(awk -v a="$postern_rate" -v b="$postfix_rate" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
echo "postern_msgs_per_s=$postern_rate postfix_msgs_per_s=$postfix_rate ratio=$ratio" \
    "postern_p50_ms=$postern_p50 postern_p99_ms=$postern_p99 postern_max_ms=$postern_max postern_late=$postern_late" \
    "postfix_p50_ms=$postfix_p50 postfix_p99_ms=$postfix_p99 postfix_max_ms=$postfix_max postfix_late=$postfix_late" \
    "neighbour_alone_s=$alone_s neighbour_hung_s=$hung_s neighbour_ratio=$neighbour_ratio"
