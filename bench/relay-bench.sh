#!/usr/bin/env bash
# Relay throughput, Postern against Postfix, same machine, same run:
#   smtp-source → Postern  → smtp-sink
#   smtp-source → Postfix (plain relay, queue on the same disk, relayhost → smtp-sink) → smtp-sink
# Each rate is messages/s from the first connection until the sink has received every message.
# Both do the same work: authenticate, queue durably, relay. Postern's scanning and ARC sealing are off
# here (BENCH_SCANNING=true / BENCH_SEAL=true turn them on); bench/scan-bench measures their cost.
# Last line: postern_msgs_per_s=… postfix_msgs_per_s=… ratio=…   (ratio = Postern / Postfix)
#
# Environment: BENCH_MESSAGES (20000), BENCH_SESSIONS (20), BENCH_SIZE_KB (10),
#   BENCH_TIMEOUT seconds per run (900), BENCH_KEEP=1 to keep files.
# Quick check: BENCH_MESSAGES=2000 bash bench/relay-bench.sh
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

messages=${BENCH_MESSAGES:-20000}
sessions=${BENCH_SESSIONS:-20}
size_kb=${BENCH_SIZE_KB:-10}
run_timeout=${BENCH_TIMEOUT:-900}

for tool in smtp-source smtp-sink postfix dotnet /usr/bin/python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (bash scripts/test.sh installs the Debian packages)"
done
ensure_postern_built
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
kill -TERM "$postern_pid"; wait_gone "$postern_pid" 20 || kill -KILL "$postern_pid"
kill -TERM "$sink_pid"

# --- Postfix -------------------------------------------------------------------------------
sink2=$(free_port); postfix_port=$(free_port)
sink_start "$sink2" "$bench_dir/postfix-sink.out"
postfix_instance "$bench_dir/postfix" "$postfix_port" "$sink2"
measure postfix "$postfix_port" "$bench_dir/postfix-sink.out" "$message"
postfix_rate=$rate

ratio=$(awk -v a="$postern_rate" -v b="$postfix_rate" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
echo "postern_msgs_per_s=$postern_rate postfix_msgs_per_s=$postfix_rate ratio=$ratio"
