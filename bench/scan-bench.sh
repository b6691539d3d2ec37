#!/usr/bin/env bash
# What Postern's built-in scanning costs, on a mixed corpus (bench/scan-corpus.py: text, HTML with
# links, PDF and image attachments, zip archives — one nested —, .docx, macro .xlsm, OLE2 .doc):
#   1. pipeline: messages/s through ScanningPipeline with the built-in engines, in process
#      (bench/scan-bench/, no SMTP, no disk; one thread, then one per core);
#   2. relay:    smtp-source → Postern → smtp-sink with scanning and ARC sealing off (as bench/relay-bench.sh);
#   3. scanned:  the same with scanning on, sealing off (BENCH_SCANNING=true) — scanning's own cost;
#   4. sealed:   the same with ARC sealing on, scanning off (BENCH_SEAL=true) — sealing's own cost;
#   5. scanning: the same with scanning and sealing on (BENCH_SCANNING=true BENCH_SEAL=true), as production runs.
# All in one run, on the same corpus: every corpus file is sent by its own smtp-source, in parallel.
# A relay rate runs from the first connection until the sink has counted every message.
# Last line: relay_msgs_per_s=… scanned_msgs_per_s=… cost_pct=… where cost_pct = 100 × (1 − scanned / relay) is
#   what built-in scanning costs against the plain relay benchmark (target ≤ 30); then sealed_msgs_per_s,
#   scanning_msgs_per_s, sealed_cost_pct = 100 × (1 − scanning / sealed) (scanning's cost when sealing is on, as
#   in production), all_cost_pct = 100 × (1 − scanning / relay) (scanning and sealing together), pipeline_msgs_per_s.
#
# Environment: BENCH_MESSAGES (20000 per relay run), BENCH_SESSIONS_PER_FILE (2, i.e. 20 sessions),
#   BENCH_PIPELINE_SECONDS (10), BENCH_TIMEOUT seconds per run (900), BENCH_KEEP=1 to keep files.
# Quick check: BENCH_MESSAGES=2000 BENCH_PIPELINE_SECONDS=3 bash bench/scan-bench.sh
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

messages=${BENCH_MESSAGES:-20000}
per_file_sessions=${BENCH_SESSIONS_PER_FILE:-2}
pipeline_seconds=${BENCH_PIPELINE_SECONDS:-10}
run_timeout=${BENCH_TIMEOUT:-900}

for tool in smtp-source smtp-sink dotnet /usr/bin/python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (bash scripts/test.sh installs the Debian packages)"
done
ensure_postern_built
log "building bench/scan-bench (Release)"
dotnet build "$repo/bench/scan-bench" -c Release --disable-build-servers -nodeReuse:false -v:q -clp:ErrorsOnly >&2 ||
    die "build of bench/scan-bench failed"
ulimit -n 65536 2>/dev/null || true

# --- 1. the pipeline, in process ------------------------------------------------------------
corpus="$bench_dir/corpus"
/usr/bin/python3 "$repo/bench/scan-corpus.py" "$corpus" || die "corpus generation failed"
files=("$corpus"/*.eml)
log "corpus: ${#files[@]} messages, $(cat "${files[@]}" | wc -c) bytes together"
log "pipeline: built-in engines, ${pipeline_seconds} s per measurement"
dotnet "$repo/bench/scan-bench/bin/Release/net10.0/scan-bench.dll" "$corpus" "$pipeline_seconds" | tee "$bench_dir/pipeline.out" >&2 ||
    die "scan-bench failed"
pipeline_rate=$(awk -F'[= ]' '/^pipeline_msgs_per_s=/ { print $2 }' "$bench_dir/pipeline.out")

# --- 2-4. the relay ---------------------------------------------------------------------------
# Postern's own SPF/DKIM/DMARC checks are built-in engines and ask DNS for every message: a loopback
# authoritative server (`bench/loopback-dns.py`, python3-dnslib) for the corpus's sender domain stands in for the local caching
# resolver a relay has. Its records carry TTLs, so Postern's resolver cache answers most questions, as
# in production. (lib.sh's dead 127.0.0.1:1 would make every check wait for its DNS timeout.)
cat >"$bench_dir/zone.txt" <<'ZONE'
$TTL 3600
partner.example.                IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
partner.example.                IN MX  10 mail.partner.example.
partner.example.                IN A   127.0.0.1
mail.partner.example.           IN A   127.0.0.1
mail.partner.example.           IN TXT "v=spf1 a -all"
_dmarc.partner.example.         IN TXT "v=DMARC1; p=none"
*.                              IN TXT "v=spf1 -all"
ZONE
dns_start "$bench_dir/zone.txt"
export Postern__Dns__Servers__0="127.0.0.1:$dns_port"

# relay_run NAME SCANNING SEAL: a fresh Postern and sink; sets rate (messages/s).
relay_run() {
    local name=$1 scanning=$2 seal=$3 dir="$bench_dir/$1" sink_port port key per_file i n start end count deadline pids=() pid rc
    mkdir -p "$dir/data"
    sink_port=$(free_port); port=$(free_port)
    sink_start "$sink_port" "$dir/sink.out"
    BENCH_SCANNING=$scanning BENCH_SEAL=$seal postern_config "$dir/postern.json" "$port"
    key=$(postern_tenant "$dir/data" bench.test "$sink_port")
    /usr/bin/python3 "$repo/bench/scan-corpus.py" --lf "$dir/corpus" "$key" || die "corpus generation failed"
    postern_start "$dir/data" "$dir/postern.json" "$port" "$dir/postern.log"
    local run_files=("$dir/corpus"/*.eml)
    per_file=$(( messages / ${#run_files[@]} ))
    n=$(( per_file * ${#run_files[@]} ))
    log "$name (scanning=$scanning, sealing=$seal): $n messages, ${#run_files[@]} corpus files × $per_file, $per_file_sessions sessions each"
    dns_before=$(dns_queries)
    cpu_start=$(cpu_ticks "$postern_pid")
    start=$(now)
    i=0
    for f in "${run_files[@]}"; do
        smtp-source -s "$per_file_sessions" -m "$per_file" -F "$f" -M mail.partner.example -f alex@partner.example -t alice@bench.test "127.0.0.1:$port" \
            >"$dir/source-$i.log" 2>&1 &
        pid=$!
        pids+=("$pid"); started_pids+=("$pid")
        i=$((i + 1))
    done
    deadline=$(( $(date +%s) + run_timeout ))
    while :; do
        count=$(sink_count "$dir/sink.out")
        [ "$count" -ge "$n" ] && break
        for pid in "${pids[@]}"; do
            if ! kill -0 "$pid" 2>/dev/null; then
                wait "$pid"; rc=$?
                [ "$rc" -eq 0 ] || { cat "$dir"/source-*.log >&2; tail -20 "$dir/postern.log" >&2; die "$name: smtp-source failed (exit $rc)"; }
            fi
        done
        [ "$(date +%s)" -lt "$deadline" ] || { tail -20 "$dir/postern.log" >&2; die "$name: only $count of $n messages at the sink after $run_timeout s"; }
        sleep 0.05
    done
    end=$(now)
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
    rate=$(awk -v n="$n" -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", n / (e - s) }')
    cpu=$(awk -v n="$n" -v a="$cpu_start" -v b="$(cpu_ticks "$postern_pid")" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) * 1000 / hz / n }')
    log "$name: $n messages at the sink $(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }') s after the first connection: $rate msg/s, Postern CPU $cpu ms per message, $(( $(dns_queries) - dns_before )) DNS questions"
    # The verdicts the scanning run gave, from Postern's own log (one "accepted … verdict …" line per message).
    if [ "$scanning" = true ]; then
        grep -o 'verdict [a-z]*\( (rule [a-z-]*)\)\?' "$dir/postern.log" | sort | uniq -c | sed 's/^/    /' >&2
    fi
    kill -TERM "$postern_pid"; wait_gone "$postern_pid" 20 || kill -KILL "$postern_pid"
    kill -TERM "$sink_pid"; wait_gone "$sink_pid" 10 || kill -KILL "$sink_pid"
}

log "load average before the relay runs: $(cut -d' ' -f1-3 /proc/loadavg)"
relay_run relay false false;   relay_rate=$rate
relay_run scanned true false;  scanned_rate=$rate
relay_run sealed false true;   sealed_rate=$rate
relay_run scanning true true;  scanning_rate=$rate
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b > 0 ? 100 * (1 - a / b) : 0) }'; }
echo "relay_msgs_per_s=$relay_rate scanned_msgs_per_s=$scanned_rate cost_pct=$(pct "$scanned_rate" "$relay_rate")" \
    "sealed_msgs_per_s=$sealed_rate scanning_msgs_per_s=$scanning_rate sealed_cost_pct=$(pct "$scanning_rate" "$sealed_rate")" \
    "all_cost_pct=$(pct "$scanning_rate" "$relay_rate") pipeline_msgs_per_s=$pipeline_rate"
