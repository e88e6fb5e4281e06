#if canImport(Glibc)
    import Glibc
#endif

// libFuzzer entry points. One binary holds every harness; `MP_FUZZ_TARGET` picks one
// (decoder, frames, poolwire). `MP_FUZZ_WRITE_SEEDS=<dir>` writes the seed corpus of every
// harness to `<dir>/<harness>/` and exits.

nonisolated(unsafe) var selected: (UnsafeRawBufferPointer) -> Void = { _ in }

nonisolated(unsafe) let harnesses:
    [(name: String, run: (UnsafeRawBufferPointer) -> Void, seeds: () -> [[UInt8]])] = [
        ("decoder", DecoderHarness.run, DecoderHarness.seeds),
        ("frames", FramesHarness.run, FramesHarness.seeds),
        ("poolwire", PoolWireHarness.run, PoolWireHarness.seeds),
    ]

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> CInt {
    if let directory = getenv("MP_FUZZ_WRITE_SEEDS").map({ String(cString: $0) }) {
        for harness in harnesses {
            let folder = "\(directory)/\(harness.name)"
            mkdir(folder, 0o755)
            for (index, seed) in harness.seeds().enumerated() {
                let path = "\(folder)/seed-\(index < 10 ? "0" : "")\(index)"
                guard let file = fopen(path, "wb") else { fatalError("cannot write \(path)") }
                _ = seed.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
                fclose(file)
            }
        }
        exit(0)
    }
    let name = getenv("MP_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let harness = harnesses.first(where: { $0.name == name }) else {
        let message = "set MP_FUZZ_TARGET to one of: \(harnesses.map(\.name).joined(separator: ", "))\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        exit(2)
    }
    if name == "frames" { FramesHarness.prepare() }
    selected = harness.run
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selected(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
