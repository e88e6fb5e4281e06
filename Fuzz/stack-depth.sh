#!/usr/bin/env bash
# Prints the stack one level of nesting costs the codec, unoptimized and optimized, to check
# BinaryDecoder.maximumDepth against the smallest thread stack it must fit (128 KiB).
#
#   Fuzz/stack-depth.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
out=Fuzz/.build/stack-depth
# The codec's files: everything in Wire/ but the framing and descriptor passing.
wire=Sources/Multiprocessing/Wire
codec=("$wire"/Binary*.swift "$wire"/Key*.swift "$wire"/CodingPathKeys.swift "$wire"/Plain*.swift
    "$wire"/Wire*.swift "$wire"/CodecError.swift)
for optimization in -Onone -O; do
    mkdir -p "$out/$optimization"
    swiftc "$optimization" -swift-version 6 -parse-as-library -module-name Codec -enable-testing \
        -emit-module -emit-module-path "$out/$optimization/Codec.swiftmodule" -emit-library -static \
        -o "$out/$optimization/libCodec.a" "${codec[@]}"
    swiftc "$optimization" -swift-version 6 -parse-as-library -I "$out/$optimization" -L "$out/$optimization" \
        -lCodec Fuzz/StackDepth/Probe.swift -o "$out/$optimization/probe"
    echo "== $optimization"
    "$out/$optimization/probe"
done
