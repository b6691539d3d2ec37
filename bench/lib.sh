# Shared helpers for the benchmark scripts (sourced, not run). Loopback only; every process
# started here is recorded and stopped by bench_cleanup, which the scripts run on exit.

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench_dir="$repo/.test-run/bench/$(basename "$0" .sh)-$$"
export TMPDIR="$bench_dir/tmp"
mkdir -p "$TMPDIR"
chmod 755 "$repo/.test-run" "$repo/.test-run/bench" "$bench_dir" 2>/dev/null || true
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_gcServer=0

started_pids=()
postfix_dirs=()
short_dirs=()

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }

bench_cleanup() {
    local d pid
    for d in "${postfix_dirs[@]}"; do postfix_stop "$d"; done
    for pid in "${started_pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${started_pids[@]}"; do wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null; done
    if [ "${BENCH_KEEP:-0}" != 1 ]; then rm -rf "$bench_dir" "${short_dirs[@]}"; else log "kept $bench_dir"; fi
}

# wait_gone PID SECONDS: true once PID has exited (or is a zombie).
wait_gone() {
    local pid=$1 deadline=$(( $(date +%s) + $2 )) state
    while [ "$(date +%s)" -lt "$deadline" ]; do
        state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 0
        [ "$state" = Z ] && return 0
        sleep 0.1
    done
    return 1
}

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT SECONDS WHAT
wait_port() {
    local deadline=$(( $(date +%s) + $2 ))
    until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
        [ "$(date +%s)" -lt "$deadline" ] || die "$3 did not accept on 127.0.0.1:$1 within $2 s"
        sleep 0.1
    done
}

postern_dll="${POSTERN_DLL:-$repo/src/Postern/bin/Release/net10.0/postern.dll}"

ensure_postern_built() {
    # Always build (incremental, a few seconds): a stale binary would measure old code.
    if [ -z "${POSTERN_DLL:-}" ]; then
        log "building src/Postern (Release)"
        dotnet build "$repo/src/Postern" -c Release --disable-build-servers -nodeReuse:false -v:q -clp:ErrorsOnly >&2 ||
            die "build failed"
    fi
    [ -f "$postern_dll" ] || die "postern.dll not found at $postern_dll"
}

postern() { dotnet "$postern_dll" "$@"; }

# postern_config FILE PORT: a plain (no TLS) listener, delivery without TLS (smtp-sink has none).
postern_config() {
    cat >"$1" <<JSON
{ "Postern": {
    "HostName": "postern.bench",
    "Listeners": [ { "Name": "bench", "EndPoint": "127.0.0.1:$2", "RequireTls": false, "Handoff": false } ],
    "Smtp": { "MaxConnectionsPerIp": 5000, "MaxConnections": 10000 },
    "Dns": { "Servers": ["127.0.0.1:1"] },
    "Scanning": { "Enabled": ${BENCH_SCANNING:-false} },
    "Signing": { "SealInbound": ${BENCH_SEAL:-false} },
    "Delivery": { "RequireTls": false, "ValidateServerCertificate": false,
                  "RetryDelays": ["00:00:01", "00:00:02", "00:00:05"], "MaxAge": "2.00:00:00" } } }
JSON
}

# postern_tenant DATA_DIR DOMAIN MTA_PORT [NAME]: registers a tenant (NAME, default bench) and prints its relay key.
postern_tenant() {
    local data=$1 domain=$2 port=$3 name=${4:-bench} out
    postern tenant add "$name" --tenant-id "$(cat /proc/sys/kernel/random/uuid)" --region eu --data-dir "$data" >/dev/null ||
        die "postern tenant add $name failed"
    postern domain add "$name" "$domain" --mta "127.0.0.1:$port" --data-dir "$data" >/dev/null ||
        die "postern domain add $name $domain failed"
    out=$(postern relay enable "$name" --data-dir "$data") || die "postern relay enable $name failed"
    printf '%s\n' "$out" | awk 'NF { last = $0 } END { print last }'
}

# postern_start DATA_DIR CONFIG PORT LOG: starts `postern serve` and sets postern_pid.
postern_start() {
    dotnet "$postern_dll" serve --data-dir "$1" --smtp "127.0.0.1:$3" --config "$2" >"$4" 2>&1 &
    postern_pid=$!
    started_pids+=("$postern_pid")
    wait_port "$3" 60 "postern serve" || { tail -20 "$4" >&2; exit 1; }
}

# sink_start PORT OUT [DUMP_DIR]: smtp-sink counting messages (-c) into OUT, and with DUMP_DIR keeping each
# message there as a file (-d); sets sink_pid.
sink_start() {
    local dump=()
    if [ -n "${3:-}" ]; then
        mkdir -p "$3" && chmod 777 "$3"  # smtp-sink writes as nobody
        dump=(-d "$3/%M")
    fi
    smtp-sink -u nobody "${dump[@]}" -c "127.0.0.1:$1" 1024 >"$2" 2>&1 &
    sink_pid=$!
    started_pids+=("$sink_pid")
    wait_port "$1" 15 "smtp-sink"
}

# sink_count OUT: messages smtp-sink has received so far.
sink_count() {
    tr '\r' '\n' <"$1" 2>/dev/null | awk -F'mesg=' 'NF > 1 { n = $2 + 0 } END { print n + 0 }'
}

# postfix_instance DIR SMTPD_PORT RELAY_PORT [MAIN_CF_LINES]: a private Postfix relaying everything to
# [127.0.0.1]:RELAY_PORT; MAIN_CF_LINES are added to its main.cf (e.g. a milter).
postfix_instance() {
    local dir=$1 port=$2 relay=$3 extra=${4:-}
    # Its sockets (DIR/spool/private/proxywrite) must fit in 107 bytes: deep checkouts use a short /tmp dir.
    if [ ${#dir} -gt 75 ]; then
        local short; short=$(mktemp -d /tmp/postern-pf-XXXXXXXX)
        ln -s "$short" "$dir"; short_dirs+=("$short"); dir=$short
    fi
    mkdir -p "$dir/etc" "$dir/spool"
    chmod 755 "$dir" "$dir/spool"
    cat >"$dir/etc/main.cf" <<CF
compatibility_level = 3.6
config_directory = $dir/etc
queue_directory = $dir/spool
data_directory = $dir/lib
maillog_file = $dir/maillog
maillog_file_prefixes = /var, /dev/stdout, $dir
syslog_name = postfix-bench
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench
mydomain = postfix.bench
myorigin = \$myhostname
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 local delivery disabled
alias_maps =
alias_database =
relay_domains =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions =
smtpd_peername_lookup = no
smtpd_tls_security_level = none
relayhost = [127.0.0.1]:$relay
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtp_tls_security_level = none
$extra
CF
    {
        echo "127.0.0.1:$port inet n  -       n       -       -       smtpd"
        cat <<'MASTER'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
MASTER
    } >"$dir/etc/master.cf"
    postfix -c "$dir/etc" start >/dev/null 2>&1 || { tail -20 "$dir/maillog" >&2; die "postfix start failed ($dir)"; }
    postfix_dirs+=("$dir")
    wait_port "$port" 30 "postfix"
}

postfix_stop() {
    local dir=$1 pid
    [ -f "$dir/spool/pid/master.pid" ] || return 0
    pid=$(tr -d ' ' <"$dir/spool/pid/master.pid")
    postfix -c "$dir/etc" stop >/dev/null 2>&1
    wait_gone "$pid" 20 || { postfix -c "$dir/etc" abort >/dev/null 2>&1; kill -KILL "$pid" 2>/dev/null; }
}

# message_file FILE SIZE_KB KEY: a pre-formatted message of about SIZE_KB kB carrying the relay key header.
message_file() {
    local file=$1 kb=$2 key=$3
    {
        printf 'X-Postern-Key: %s\n' "$key"
        printf 'From: <sender@external.test>\nTo: <user@bench.test>\nSubject: relay benchmark\n'
        printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n'
        local line='The quick brown fox jumps over the lazy dog while the relay keeps counting messages.'
        local lines=$(( kb * 1024 / (${#line} + 1) ))
        for ((i = 0; i < lines; i++)); do printf '%s\n' "$line"; done
    } >"$file"
}

# cpu_ticks PID: user + system CPU time of PID so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# tree_cpu_ticks PID: CPU time (clock ticks) of PID and every live descendant, with what their exited and
# reaped children used (cutime + cstime): the figure for a daemon that forks workers (Postfix, rspamd).
tree_cpu_ticks() {
    /usr/bin/python3 - "$1" <<'PY'
import os, sys
stats = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(p)] = (int(f[1]), sum(int(x) for x in f[11:15]))  # ppid; utime stime cutime cstime
todo, total = [int(sys.argv[1])], 0
while todo:
    pid = todo.pop()
    total += stats.get(pid, (0, 0))[1]
    todo += [c for c, (ppid, _) in stats.items() if ppid == pid]
print(total)
PY
}

# dns_start ZONE_FILE: the loopback authoritative DNS server (bench/loopback-dns.py) on a free port;
# sets dns_port and dns_pid.
dns_start() {
    dns_port=$(free_port)
    /usr/bin/python3 "$repo/bench/loopback-dns.py" "$dns_port" "$1" >"$bench_dir/dns.log" 2>&1 &
    dns_pid=$!
    started_pids+=("$dns_pid")
    wait_port "$dns_port" 15 "DNS server"
}

# dns_queries: questions the DNS server has answered so far.
dns_queries() {
    local before
    before=$(grep -c '^queries=' "$bench_dir/dns.log")
    kill -USR1 "$dns_pid"
    for _ in $(seq 50); do [ "$(grep -c '^queries=' "$bench_dir/dns.log")" -gt "$before" ] && break; sleep 0.1; done
    grep '^queries=' "$bench_dir/dns.log" | tail -1 | cut -d= -f2
}
