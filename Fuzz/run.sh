#!/usr/bin/env bash
# Coverage-guided fuzzing of the wire: builds the harnesses (Fuzz/build.sh), then runs each one
# for SECONDS (default 20) from the seed corpus in Fuzz/corpus/<harness>/, and prints how many
# inputs each ran. Exits non-zero if any input crashed, leaked a descriptor, hung or broke an
# oracle; the input is kept in Fuzz/.build/artifacts/ (replay: MP_FUZZ_TARGET=<harness>
# Fuzz/.build/mp-fuzz <input>).
#
#   Fuzz/run.sh [SECONDS]
#   FUZZ_SANITIZE=address Fuzz/run.sh [SECONDS]    with AddressSanitizer (slower)
#   FUZZ_HARNESSES="decoder frames" Fuzz/run.sh    only some harnesses
#   FUZZ_OPTIMIZATION=-Onone Fuzz/run.sh           the library unoptimized (debug-sized frames)
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

seconds=${1:-20}
harnesses=${FUZZ_HARNESSES:-decoder frames poolwire}
if [ "${FUZZ_SANITIZE:-}" = address ]; then
    binary=$(Fuzz/build.sh address | tail -1) || exit 1
    # Instrumented frames are larger: give the decoder's small-stack thread room for them.
    export MP_FUZZ_STACK_KIB=${MP_FUZZ_STACK_KIB:-1024}
else
    binary=$(Fuzz/build.sh | tail -1) || exit 1
fi
# Dictionaries then iterate in one order, so a decoded value re-encodes to the same bytes.
export SWIFT_DETERMINISTIC_HASHING=1
# Let libFuzzer, not the Swift backtracer, handle a crash: it writes the input out.
export SWIFT_BACKTRACE=enable=no

artifacts=Fuzz/.build/artifacts
mkdir -p "$artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
total=0
for harness in $harnesses; do
    mkdir -p "$work/$harness"
    log="$work/$harness.log"
    MP_FUZZ_TARGET=$harness "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$artifacts/$harness-" \
        "$work/$harness" "Fuzz/corpus/$harness" > "$log" 2>&1
    code=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    total=$((total + ${runs:-0}))
    if [ $code -ne 0 ]; then
        status=1
        echo "fuzz $harness: FAILED (exit $code) after ${runs:-?} inputs"
        grep -E "Fatal error|ERROR|SUMMARY|Test unit written" "$log" | head -20
    else
        echo "fuzz $harness: ${runs:-?} inputs in ${seconds}s, no crash"
    fi
done
echo "fuzz total: $total inputs"
exit $status
