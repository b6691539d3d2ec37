#!/usr/bin/env bash
# CPU per message of Postern's production path — built-in scanning (authentication checks, attachments, URLs,
# impersonation; ClamAV and rspamd off) and the ARC seal for Microsoft 365 — in process, one thread, for mail
# as Exchange Online hands it over (bench/corpus/exo-corpus.py, the gateway benchmark's corpus): unsigned, DKIM-signed
# by the sender, and DKIM-signed carrying Exchange Online's i=1 ARC set. Keys and SPF/DMARC records come from an in-memory
# resolver loaded with the corpus's dns.txt, so DNS costs nothing and what is measured is CPU.
# Issue 7, test 7: signed+sealed within 1.5x unsigned. A measurement, not a test: it fails only when a
# message does not authenticate as its form says (dkim=pass, arc=pass, a new i=2 set).
#
# Last lines: unsigned_cpu_ms_per_msg=… signed_cpu_ms_per_msg=… sealed_cpu_ms_per_msg=…,
#   then ratio_sealed_to_unsigned=… ratio_signed_to_unsigned=…
# Environment: BENCH_SECONDS per form (30; split between scanning + sealing, scanning alone, sealing alone),
#   BENCH_CORPUS_FILES (50 distinct messages, taken in turn), BENCH_KEEP=1 to keep the corpus.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

seconds=${BENCH_SECONDS:-30}
corpus_files=${BENCH_CORPUS_FILES:-50}
for tool in dotnet /usr/bin/python3 openssl; do
    command -v "$tool" >/dev/null || die "$tool is missing (bash scripts/test.sh installs the Debian packages)"
done
/usr/bin/python3 -c 'import dkim, authres' 2>/dev/null || die "python3-dkim and python3-authres are missing (Debian packages)"
log "building bench/signed-mail-bench (Release)"
dotnet build "$repo/bench/signed-mail-bench" -c Release --disable-build-servers -nodeReuse:false -v:q -clp:ErrorsOnly >&2 ||
    die "build of bench/signed-mail-bench failed"

corpus="$bench_dir/corpus"
/usr/bin/python3 "$repo/bench/corpus/exo-corpus.py" "$corpus" "$corpus_files" bench.test || die "corpus generation failed"
for form in unsigned signed sealed; do
    log "corpus $form: $(ls "$corpus/$form" | wc -l) messages, $(cat "$corpus/$form"/*.eml | wc -c) bytes together"
done
log "load average before: $(cut -d' ' -f1-3 /proc/loadavg); ${seconds} s per form"
dotnet "$repo/bench/signed-mail-bench/bin/Release/net10.0/signed-mail-bench.dll" "$corpus" "$seconds" || die "signed-mail-bench failed"
log "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
