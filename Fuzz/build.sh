#!/usr/bin/env bash
# Builds the libFuzzer binary for every harness: Fuzz/.build/mp-fuzz (or mp-fuzz-asan).
#
#   Fuzz/build.sh            coverage-guided, optimized (what run.sh uses)
#   Fuzz/build.sh address    the same with AddressSanitizer
#   FUZZ_OPTIMIZATION=-Onone Fuzz/build.sh    unoptimized, as a debug build runs the library
#
# It compiles, with swiftc -sanitize=fuzzer, the library files the harnesses reach (the codec,
# the framing, the system helpers under them, the pool protocol's constants) together with the
# harnesses into one module, so the harnesses see internal types. No SwiftPM target: CI's
# `swift build` never compiles this.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

sanitizers=fuzzer
name=mp-fuzz
if [ "${1:-}" = address ]; then
    sanitizers=fuzzer,address
    name=mp-fuzz-asan
fi
optimization=${FUZZ_OPTIMIZATION:--O}
if [ "$optimization" != -O ]; then name="$name$optimization"; fi
out=Fuzz/.build
mkdir -p "$out/c-$name"

cat > "$out/module.modulemap" <<MAP
module CMultiprocessing {
    umbrella header "$PWD/Sources/CMultiprocessing/include/CMultiprocessing.h"
    export *
}
MAP

objects=()
for source in Sources/CMultiprocessing/*.c; do
    object="$out/c-$name/$(basename "$source" .c).o"
    clang -c -O2 -g -fsanitize="${sanitizers/fuzzer/fuzzer-no-link}" -fPIC \
        -I Sources/CMultiprocessing/include "$source" -o "$object"
    objects+=("$object")
done

# swift-system (`SystemPackage`, for `Errno`): the module and objects SwiftPM built for the
# package's release configuration (built here first if missing).
if [ ! -f .build/release/Modules/SystemPackage.swiftmodule ]; then
    swift build -c release --target SystemPackage > /dev/null
fi
system=(
    -I .build/release/Modules
    -Xcc -fmodule-map-file=.build/checkouts/swift-system/Sources/CSystem/include/module.modulemap
    .build/release/SystemPackage.build/*.o .build/release/CSystem.build/*.o
)

library=(
    Sources/Multiprocessing/Wire/*.swift
    Sources/Multiprocessing/System/*.swift
    Sources/Multiprocessing/Pool/PoolWire.swift
)
# Output goes to a log (gold warns about every ASan symbol it cannot export); shown on failure.
if ! swiftc -sanitize="$sanitizers" "$optimization" -gline-tables-only -parse-as-library -swift-version 6 \
    -module-name MPFuzz -Xcc -fmodule-map-file="$out/module.modulemap" \
    "${system[@]}" "${library[@]}" Fuzz/Support/*.swift Fuzz/Harnesses/*.swift "${objects[@]}" \
    -o "$out/$name" > "$out/build-$name.log" 2>&1; then
    grep -v "Cannot export local symbol" "$out/build-$name.log" >&2
    exit 1
fi
grep -E "warning:|error:" "$out/build-$name.log" | grep -v "Cannot export local symbol" >&2 || true
echo "$out/$name"
