#!/usr/bin/env bash
# The production path against what a provider would otherwise assemble, same machine, same run:
#   Postern, built-in scanning and ARC sealing on            → smtp-sink
#   Postfix + Rspamd as a milter (SPF/DKIM/DMARC/ARC checks, ARC signing with RSA-2048) → smtp-sink
# ClamAV off in both, Rspamd's Internet-dependent modules off (RBLs, fuzzy, URL reputation, …).
# Both get the same corpus (bench/corpus/exo-corpus.py: mail as Exchange Online hands it over, 4-205 KB,
# attachments, Exchange headers) from the same sender (bench/smtp-load.py, BENCH_CONNECTIONS sessions),
# and resolve through the same loopback DNS server (bench/loopback-dns.py) that publishes the senders'
# DKIM keys, SPF and DMARC, Exchange Online's ARC key and both stacks' ARC keys. Two of the corpus's forms:
#   sealed    DKIM-signed by the sender domains and carrying Exchange Online's i=1 ARC set (each stack adds i=2);
#   unsigned  the same messages without either (each stack adds i=1).
# Each run starts its stack afresh, sends BENCH_WARMUP messages (not measured), then BENCH_MESSAGES: the rate
# runs from the first connection until the sink has them all; CPU per message is utime+stime from
# /proc/PID/stat over that interval (Postern's process; Postfix's master and all its processes, with the
# children it reaped, plus rspamd's). Every delivered message must carry exactly one ARC-Seal of the
# stack's instance, and BENCH_VERIFY_SAMPLE of them must pass python3-dkim's arc_verify (bench/arc-check.py).
# Last line: sealed_postern_msgs_per_s=… sealed_peer_msgs_per_s=… sealed_ratio=… sealed_postern_cpu_ms=…
#   sealed_peer_cpu_ms=… and the same five for unsigned_   (ratio = Postern / Postfix+Rspamd)
#
# Environment: BENCH_MESSAGES (20000 per run), BENCH_WARMUP (300), BENCH_CONNECTIONS (20),
#   BENCH_CORPUS_FILES (500 distinct messages, sent in turn), BENCH_VERIFY_SAMPLE (50),
#   BENCH_RSPAMD_WORKERS (2 milter workers), BENCH_RSPAMD_OFF (more rspamd modules to turn off, e.g. "phishing mime_types"),
#   BENCH_TIMEOUT seconds per run (900), BENCH_KEEP=1 to keep files, BENCH_PROFILE=1 to record where Postern's CPU
#   goes in each measured run (perf, with the JIT's perf map), as .test-run/bench/gateway-profile-{sealed,unsigned}.txt;
#   BENCH_ONLY=postern skips the peer's runs (for profiling; no ratio then).
# Needs Debian's postfix, rspamd, python3-dkim, python3-dnslib, python3-authres.
# Quick check: BENCH_MESSAGES=2000 BENCH_CORPUS_FILES=200 bash bench/gateway-bench.sh
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

messages=${BENCH_MESSAGES:-20000}
warmup=${BENCH_WARMUP:-300}
connections=${BENCH_CONNECTIONS:-20}
corpus_files=${BENCH_CORPUS_FILES:-500}
verify_sample=${BENCH_VERIFY_SAMPLE:-50}
rspamd_workers=${BENCH_RSPAMD_WORKERS:-2}
profile=${BENCH_PROFILE:-0}
only=${BENCH_ONLY:-}
run_timeout=${BENCH_TIMEOUT:-900}
hz=$(getconf CLK_TCK)

for tool in smtp-sink postfix rspamd openssl dotnet /usr/bin/python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (bash scripts/test.sh installs the Debian packages)"
done
/usr/bin/python3 -c 'import dkim, dnslib, authres' 2>/dev/null ||
    die "python3-dkim, python3-dnslib and python3-authres are needed (apt-get install python3-dkim python3-dnslib python3-authres)"
ensure_postern_built
ulimit -n 65536 2>/dev/null || true

# --- corpus, keys, DNS ------------------------------------------------------------------------
corpus="$bench_dir/corpus"
log "corpus: $corpus_files messages, sealed and unsigned (bench/corpus/exo-corpus.py)"
/usr/bin/python3 "$repo/bench/corpus/exo-corpus.py" "$corpus" "$corpus_files" bench.test || die "corpus generation failed"
log "corpus: $(du -sk "$corpus/sealed" | cut -f1) kB sealed, $(du -sk "$corpus/unsigned" | cut -f1) kB unsigned"

# zone_key NAME PEM: the DKIM TXT line publishing PEM's public key at NAME.
zone_key() {
    local p
    p=$(openssl rsa -in "$2" -pubout -outform DER 2>/dev/null | base64 -w0) || die "cannot read $2"
    printf '%s. 3600 IN TXT %s\n' "$1" "$(printf 'v=DKIM1; k=rsa; p=%s' "$p" | fold -w 250 | sed 's/.*/"&"/' | tr '\n' ' ')"
}
openssl genrsa -traditional -out "$corpus/keys/postern-arc.pem" 2048 2>/dev/null || die "openssl genrsa failed"
openssl genrsa -traditional -out "$corpus/keys/rspamd-arc.pem" 2048 2>/dev/null || die "openssl genrsa failed"
chmod 644 "$corpus/keys/rspamd-arc.pem"
cp "$corpus/zone.txt" "$bench_dir/zone.txt"
{
    zone_key postern1._domainkey.arc.postern.bench "$corpus/keys/postern-arc.pem"
    zone_key rspamd._domainkey.bench.test "$corpus/keys/rspamd-arc.pem"
} >>"$bench_dir/zone.txt"
dns_start "$bench_dir/zone.txt"
log "DNS: 127.0.0.1:$dns_port"

# --- the two stacks ---------------------------------------------------------------------------
# postern_up DIR SINK_PORT: a fresh Postern (scanning and sealing on) delivering to SINK_PORT; sets port, key, cpu_pids.
postern_up() {
    local dir=$1
    mkdir -p "$dir/data"
    port=$(free_port)
    BENCH_SCANNING=true BENCH_SEAL=true postern_config "$dir/postern.json" "$port"
    key=$(postern_tenant "$dir/data" bench.test "$2")
    if [ "$profile" = 1 ]; then
        # Methods get their names in perf through /tmp/perf-PID.map: every method JIT-compiled (no ReadyToRun
        # code) into plain anonymous memory (no W^X double mapping, which perf cannot read the map for).
        export DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0 DOTNET_ReadyToRun=0
    fi
    Postern__Dns__Servers__0="127.0.0.1:$dns_port" Postern__Signing__ArcDomain=arc.postern.bench \
        Postern__Signing__ArcKeyPath="$corpus/keys/postern-arc.pem" postern_start "$dir/data" "$dir/postern.json" "$port" "$dir/postern.log"
    unset DOTNET_PerfMapEnabled DOTNET_EnableWriteXorExecute DOTNET_ReadyToRun
    cpu_pids=("$postern_pid")
    [ "$profile" = 1 ] && short_dirs+=("/tmp/perf-$postern_pid.map")
}

postern_down() {
    kill -TERM "$postern_pid"; wait_gone "$postern_pid" 20 || kill -KILL "$postern_pid"
}

# rspamd_up DIR: a private rspamd (stock /etc/rspamd config, private local.d/override.d): a milter proxy that scans
# itself, SPF/DKIM/DMARC/ARC checks and ARC signing on, modules that need the Internet or redis off; sets milter_port, rspamd_pid.
rspamd_up() {
    local dir=$1 conf=$1/conf m http_port hs
    hs=${POSTERN_TEST_RSPAMD_HS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/postern-tests/rspamd-hs-cache}
    mkdir -p "$conf/local.d" "$conf/override.d" "$dir/db" "$dir/run" "$dir/log" "$hs"
    for m in rbl surbl emails hfilter asn fuzzy_check whitelist mx_check multimap reputation url_redirector \
             greylist ratelimit neural history_redis replies rspamd_update dkim_signing ${BENCH_RSPAMD_OFF:-}; do
        echo 'enabled = false;' >"$conf/local.d/$m.conf"
    done
    cat >"$conf/local.d/options.inc" <<CONF
dns { nameserver = ["127.0.0.1:$dns_port"]; timeout = 1s; retransmits = 2; }
hs_cache_dir = "\${HS_CACHE}/";
check_local = true;
CONF
    # The peer delivers every message, as Postern does (its verdicts are all deliver): the comparison is of the
    # work, so no score may turn into a refusal that skips the rest of it.
    printf 'reject = 10000;\nadd_header = 9000;\ngreylist = 8000;\n' >"$conf/local.d/actions.conf"
    # Mail arrives from 127.0.0.1 here (Exchange Online's addresses in production): check and sign it as inbound mail.
    for m in spf dkim dmarc; do printf 'check_local = true;\ncheck_authed = true;\n' >"$conf/local.d/$m.conf"; done
    cat >"$conf/local.d/arc.conf" <<CONF
check_local = true;
sign_local = true;
sign_inbound = true;
use_domain = "recipient";
use_esld = false;
allow_hdrfrom_mismatch = true;
allow_username_mismatch = true;
selector = "rspamd";
path = "$corpus/keys/rspamd-arc.pem";
CONF
    milter_port=$(free_port); http_port=$(free_port)
    printf 'bind_socket = "127.0.0.1:%s";\ncount = 1;\n' "$http_port" >"$conf/override.d/worker-normal.inc"
    cat >"$conf/override.d/worker-proxy.inc" <<CONF
bind_socket = "127.0.0.1:$milter_port";
milter = yes;
timeout = 120s;
count = $rspamd_workers;
upstream "local" { default = yes; self_scan = yes; }
CONF
    echo 'enabled = false;' >"$conf/override.d/worker-controller.inc"
    echo 'level = "warning";' >"$conf/override.d/logging.inc"
    # As root, -i runs the workers as root too (no chown of the private dirs).
    rspamd -i -f -c /etc/rspamd/rspamd.conf --var=LOCAL_CONFDIR="$conf" --var=DBDIR="$dir/db" --var=RUNDIR="$dir/run" \
        --var=LOGDIR="$dir/log" --var=HS_CACHE="$hs" >"$dir/log/stdout.log" 2>&1 </dev/null &
    rspamd_pid=$!
    started_pids+=("$rspamd_pid")
    wait_port "$milter_port" 120 "rspamd milter" || { tail -20 "$dir/log/rspamd.log" >&2; exit 1; }
}

rspamd_down() {
    kill -TERM "$rspamd_pid"; wait_gone "$rspamd_pid" 20 || kill -KILL "$rspamd_pid"
}

# peer_up DIR SINK_PORT: a fresh rspamd and Postfix (milter → rspamd, relayhost → SINK_PORT); sets port, key, cpu_pids.
peer_up() {
    local dir=$1
    rspamd_up "$dir/rspamd"
    port=$(free_port)
    postfix_instance "$dir/postfix" "$port" "$2" "smtpd_milters = inet:127.0.0.1:$milter_port
non_smtpd_milters =
milter_protocol = 6
milter_default_action = tempfail
milter_mail_macros = i {mail_addr} {client_addr} {client_name} {auth_authen}"
    key=bench-peer-has-no-relay-key-of-its-own
    cpu_pids=("$(tr -d ' ' <"$dir/postfix/spool/pid/master.pid")" "$rspamd_pid")
}

peer_down() {
    postfix_stop "$1/postfix"
    rspamd_down
}

# cpu_now: clock ticks used so far by the processes in cpu_pids and their descendants.
cpu_now() {
    local pid total=0
    for pid in "${cpu_pids[@]}"; do total=$(( total + $(tree_cpu_ticks "$pid") )); done
    echo "$total"
}

# wait_sink OUT COUNT WHAT: until the sink has counted COUNT messages.
wait_sink() {
    local deadline=$(( $(date +%s) + run_timeout )) count
    while :; do
        count=$(sink_count "$1")
        [ "$count" -ge "$2" ] && return 0
        [ "$(date +%s)" -lt "$deadline" ] || die "$3: only $count of $2 messages at the sink after $run_timeout s"
        sleep 0.05
    done
}

# send DIR PORT KEY COUNT LOG: the corpus of DIR, COUNT messages.
send() {
    /usr/bin/python3 "$repo/bench/smtp-load.py" corpus "$2" "$1" "$4" "$connections" alice@bench.test "$3" >"$5" 2>&1 ||
        { tail -20 "$5" >&2; die "smtp-load failed ($5)"; }
}

# profile_report DIR CORPUS CPU_MS: Postern's perf profile of the measured run, each symbol's share turned into
# CPU ms per message (share × CPU_MS), self time and with callees; kept as .test-run/bench/gateway-profile-CORPUS.txt.
# (libcoreclr.so has no symbols here: its lines are the runtime, mostly the GC.)
profile_report() {
    local out="$repo/.test-run/bench/gateway-profile-$2.txt" mode
    {
        echo "== every sample, by what the code was doing (bench/perf-buckets.py)"
        perf script -i "$1/perf.data" -F tid,period,ip,sym,dso 2>/dev/null | /usr/bin/python3 "$repo/bench/perf-buckets.py" "$3"
    } >"$out"
    for mode in --no-children --children; do
        echo "== $mode: percent of Postern's samples, CPU ms per message ($3 ms per message in all)"
        perf report -i "$1/perf.data" --stdio "$mode" --sort dso,sym -g none --percent-limit 0.7 2>/dev/null |
            awk -v cpu="$3" '/^ *[0-9.]+%/ { c = $1 + 0  # the first column: self time, or with --children inclusive time
                             sub(/^ *[0-9.]+% *([0-9.]+% *)?/, ""); printf "%6.2f%% %7.2f ms  %s\n", c, c * cpu / 100, $0 }' | head -40
    done >>"$out"
    log "$2: profile in $out (BENCH_PROFILE=1; perf's sampling adds a little CPU to this run)"
    head -60 "$out" >&2
}

# run STACK CORPUS INSTANCE: one measured run; sets rate and cpu (ms per message).
run() {
    local stack=$1 kind=$2 instance=$3 dir="$bench_dir/$1-$2" sink_port start end cpu_start
    mkdir -p "$dir"
    sink_port=$(free_port)
    sink_start "$sink_port" "$dir/sink.out" "$dir/delivered"
    "${stack}_up" "$dir" "$sink_port"
    log "$stack/$kind: $warmup warm-up messages"
    send "$corpus/$kind" "$port" "$key" "$warmup" "$dir/warmup.log"
    wait_sink "$dir/sink.out" "$warmup" "$stack/$kind warm-up"
    log "$stack/$kind: $messages messages over $connections sessions (load average $(cut -d' ' -f1 /proc/loadavg))"
    local perf_pid=
    if [ "$stack" = postern ] && [ "$profile" = 1 ]; then
        perf record -F 499 -g -p "$postern_pid" -o "$dir/perf.data" >"$dir/perf.log" 2>&1 &
        perf_pid=$!
        started_pids+=("$perf_pid")
    fi
    local dns_before; dns_before=$(dns_queries)
    cpu_start=$(cpu_now)
    start=$(now)
    send "$corpus/$kind" "$port" "$key" "$messages" "$dir/send.log"
    wait_sink "$dir/sink.out" $(( warmup + messages )) "$stack/$kind"
    end=$(now)
    dns=$(awk -v n="$messages" -v a="$dns_before" -v b="$(dns_queries)" 'BEGIN { printf "%.2f", (b - a) / n }')
    rate=$(awk -v n="$messages" -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", n / (e - s) }')
    cpu=$(awk -v n="$messages" -v a="$cpu_start" -v b="$(cpu_now)" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) * 1000 / hz / n }')
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid"; wait_gone "$perf_pid" 60 || kill -KILL "$perf_pid"
        profile_report "$dir" "$kind" "$cpu"
    fi
    "${stack}_down" "$dir"
    kill -TERM "$sink_pid"; wait_gone "$sink_pid" 10 || kill -KILL "$sink_pid"
    /usr/bin/python3 "$repo/bench/arc-check.py" "$bench_dir/zone.txt" "$dir/delivered" "$instance" "$verify_sample" >"$dir/arc-check.out" 2>&1 ||
        { cat "$dir/arc-check.out" >&2; die "$stack/$kind: not every delivered message carries a valid i=$instance ARC set"; }
    log "$stack/$kind: $rate msg/s, CPU $cpu ms per message, $dns DNS queries per message; sealed: $(tail -1 "$dir/arc-check.out")"
    if [ "$stack" = postern ]; then
        grep -o 'verdict [a-z]*\( (rule [a-z-]*)\)\?' "$dir/postern.log" | sort | uniq -c | sed 's/^/    /' >&2
    fi
}

log "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
unsigned_peer_rate=0 unsigned_peer_cpu=0 sealed_peer_rate=0 sealed_peer_cpu=0
run postern unsigned 1; unsigned_postern_rate=$rate unsigned_postern_cpu=$cpu
[ "$only" = postern ] || { run peer unsigned 1; unsigned_peer_rate=$rate unsigned_peer_cpu=$cpu; }
run postern sealed 2;   sealed_postern_rate=$rate   sealed_postern_cpu=$cpu
[ "$only" = postern ] || { run peer sealed 2; sealed_peer_rate=$rate sealed_peer_cpu=$cpu; }
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo "sealed_postern_msgs_per_s=$sealed_postern_rate sealed_peer_msgs_per_s=$sealed_peer_rate" \
    "sealed_ratio=$(ratio "$sealed_postern_rate" "$sealed_peer_rate") sealed_postern_cpu_ms=$sealed_postern_cpu sealed_peer_cpu_ms=$sealed_peer_cpu" \
    "unsigned_postern_msgs_per_s=$unsigned_postern_rate unsigned_peer_msgs_per_s=$unsigned_peer_rate" \
    "unsigned_ratio=$(ratio "$unsigned_postern_rate" "$unsigned_peer_rate") unsigned_postern_cpu_ms=$unsigned_postern_cpu unsigned_peer_cpu_ms=$unsigned_peer_cpu"
