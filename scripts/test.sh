#!/usr/bin/env bash
# The project's one test command: installs the peers the tests need, builds once, runs every
# test project and ends with "Tests: N passed, N failed[, N skipped]" as the very last line.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

# Debian packages the tests drive as real peers. Later issues append here (clamav-daemon, rspamd, postgresql, chromium).
PACKAGES="postfix swaks libnet-ssleay-perl python3 python3-dnslib python3-dkim python3-authres clamav-daemon rspamd prometheus systemd"

run_dir="$repo/.test-run"
results_dir="$run_dir/results"
# MSBuild and test temp dirs stay out of /tmp; one per run, so a concurrent build's scratch is never ours.
export TMPDIR="$run_dir/tmp.$$"
exits_file="$TMPDIR/nonzero-exits"
for stale in "$run_dir"/tmp.*; do
    [ -d "$stale" ] && ! kill -0 "${stale##*.}" 2>/dev/null && rm -rf "$stale"
done
rm -rf "$results_dir"
mkdir -p "$results_dir" "$TMPDIR"
chmod 755 "$run_dir" "$TMPDIR"        # Postfix daemons and smtp-sink (unprivileged) work below it
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export DOTNET_CLI_WORKLOAD_UPDATE_NOTIFY_DISABLE=true DOTNET_GENERATE_ASPNET_CERTIFICATE=false
export MSBUILDDISABLENODEREUSE=1 DOTNET_CLI_USE_MSBUILD_SERVER=0

log() { printf '==> %s\n' "$*"; }

summary() {  # summary PASSED FAILED SKIPPED — must be the last line printed
    local line="Tests: $1 passed, $2 failed"
    [ "$3" -gt 0 ] && line="$line, $3 skipped"
    printf '%s\n' "$line"
}

# ---------------------------------------------------------------------------------------------
# (a) Debian packages
system_postfix_running() { postfix status >/dev/null 2>&1; }

install_packages() {
    local missing=() p
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && { log "Debian packages present"; return 0; }

    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages (${missing[*]}) and not root: install them first" >&2
        return 1
    fi
    log "installing: ${missing[*]}"

    # Packages must not start their system daemons: deny service starts while installing.
    local policy=/usr/sbin/policy-rc.d backup="" created=0
    if [ -e "$policy" ]; then
        "$policy" postfix start >/dev/null 2>&1
        if [ $? -ne 101 ]; then backup="$policy.postern-test"; mv "$policy" "$backup"; fi
    fi
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; created=1
    fi
    local was_running=0
    command -v postfix >/dev/null 2>&1 && system_postfix_running && was_running=1

    local rc=0
    apt-get update -qq || rc=$?
    if [ $rc -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" || rc=$?
    fi

    if [ $created -eq 1 ]; then rm -f "$policy"; fi
    if [ -n "$backup" ]; then mv "$backup" "$policy"; fi
    # A daemon started despite the policy (or by a trigger) is ours to stop; one that ran before is not.
    if [ $was_running -eq 0 ] && command -v postfix >/dev/null 2>&1 && system_postfix_running; then
        log "stopping the system postfix the install started"
        postfix stop >/dev/null 2>&1 || true
    fi
    return $rc
}

if ! install_packages; then
    echo "package installation failed" >&2
    summary 0 1 0
    exit 1
fi

# ---------------------------------------------------------------------------------------------
# (b) build once
log "dotnet build Postern.slnx -c Release"
if ! dotnet build Postern.slnx -c Release --disable-build-servers -nodeReuse:false -v:minimal -clp:ErrorsOnly\;Summary; then
    echo "build failed: no tests were run (counted as 1 failed)" >&2
    summary 0 1 0
    exit 1
fi

# ---------------------------------------------------------------------------------------------
# (c) run each test project
aborted=0
for proj in $(find tests -mindepth 2 -maxdepth 2 -name '*.csproj' | sort); do
    name="$(basename "$proj" .csproj)"
    log "dotnet test $name"
    # The hang timeout turns a stuck test into a failed run instead of a stuck CI job.
    timeout --kill-after=30s 20m dotnet test "$proj" --no-build -c Release \
        --results-directory "$results_dir" \
        --logger "trx;LogFileName=$name.trx" \
        --logger "console;verbosity=normal" \
        --blame-hang-timeout 10m
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "dotnet test $name exited with $rc" >&2
        echo "$name $rc" >>"$exits_file"
    fi
done

# ---------------------------------------------------------------------------------------------
# (d) count results from the TRX files
counts="$(/usr/bin/python3 - "$results_dir" "$exits_file" <<'PY'
import glob, os, sys
import xml.etree.ElementTree as ET
results_dir, exits_file = sys.argv[1], sys.argv[2]
ns = "{http://microsoft.com/schemas/VisualStudio/TeamTest/2010}"
passed = failed = skipped = 0
failed_by_project = {}
for trx in sorted(glob.glob(os.path.join(results_dir, "*.trx"))):
    project = os.path.splitext(os.path.basename(trx))[0]
    try:
        root = ET.parse(trx).getroot()
    except ET.ParseError as e:
        print(f"unreadable TRX {trx}: {e}", file=sys.stderr)
        failed += 1
        continue
    n = 0
    for r in root.iter(ns + "UnitTestResult"):
        outcome = r.get("outcome", "")
        if outcome == "Passed":
            passed += 1
        elif outcome in ("NotExecuted", "Inconclusive"):
            skipped += 1
        else:
            failed += 1
            n += 1
            print(f"FAILED {project}: {r.get('testName')} ({outcome})", file=sys.stderr)
    failed_by_project[project] = n
# A run that exited non-zero without a recorded failure crashed, hung or lost its TRX: count it.
if os.path.exists(exits_file):
    for line in open(exits_file):
        project = line.split()[0]
        if failed_by_project.get(project, 0) == 0:
            print(f"FAILED {project}: test run aborted (exit {line.split()[1]})", file=sys.stderr)
            failed += 1
print(passed, failed, skipped)
PY
)"
read -r passed failed skipped <<<"${counts:-0 1 0}"

# Tests stop what they start; this only catches what a crashed or killed test host left behind:
# processes whose command line or working directory is inside this run's TMPDIR.
sweep_leftovers() {
    local p pid cwd owner_root pids=()
    for p in /proc/[0-9]*; do
        pid="${p#/proc/}"
        [ "$pid" = "$$" ] && continue
        cwd="$(readlink "$p/cwd" 2>/dev/null)"
        case "$cwd" in
            # Postfix instances moved to a short path (socket length) record their run in .owner.
            /tmp/postern-pf-*) owner_root="${cwd#/tmp/postern-pf-}"; owner_root="/tmp/postern-pf-${owner_root%%/*}"
                               [ "$(cat "$owner_root/.owner" 2>/dev/null)" = "$TMPDIR" ] && { pids+=("$pid"); continue; } ;;
        esac
        if [[ "$cwd" == "$TMPDIR" || "$cwd" == "$TMPDIR/"* ]] || tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF "$TMPDIR/"; then
            pids+=("$pid")
        fi
    done
    [ ${#pids[@]} -eq 0 ] && return 0
    echo "warning: stopping ${#pids[@]} process(es) the tests left running: ${pids[*]}" >&2
    kill -TERM "${pids[@]}" 2>/dev/null
    local alive
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        alive=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && return 0
        sleep 0.5
    done
    kill -KILL "${pids[@]}" 2>/dev/null
    return 0
}
sweep_leftovers
for short in /tmp/postern-pf-*; do
    [ "$(cat "$short/.owner" 2>/dev/null)" = "$TMPDIR" ] && rm -rf "$short"
done
rm -rf "$TMPDIR"

summary "$passed" "$failed" "$skipped"
[ "$failed" -eq 0 ]
