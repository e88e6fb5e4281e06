import BenchSupport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// The cluster entries are measured by mp-bench-cluster, a binary of their own beside this one,
// so that this binary (whose copies the start entries spawn) links no SwiftNIO, Foundation or
// ICU: see Sources/mp-bench-cluster/main.swift.

/// The cluster entries, measured by mp-bench-cluster (all the requested ones in one run, on
/// the first entry's measure).
let clusterCatalogue: [CatalogueEntry] = [
    ("cluster_map_throughput", "tasks/s", "higher"),
    ("cluster_map_throughput_chunk1", "tasks/s", "higher"),
    ("cluster_apply_latency", "ms", "lower"),
    ("cluster_recovery", "s", "lower"),
].map { entry in
    (entry.0, entry.1, entry.2, { try ClusterRunner.figure(entry.0) })
}

enum ClusterRunner {
    private static let figures = Mutex<[String: Double]?>(nil)

    /// `name`'s figure; its peer's goes in ``peerFigures``.
    static func figure(_ name: String) throws -> Double {
        let known = try figures.withLock { known -> [String: Double] in
            if let known { return known }
            let measured = try measureAll()
            known = measured
            return measured
        }
        guard let figure = known[name] else { throw BenchSetupError("mp-bench-cluster gave no \(name)") }
        return figure
    }

    /// Runs mp-bench-cluster for every cluster entry this run asked for.
    private static func measureAll() throws -> [String: Double] {
        let names = clusterCatalogue.map(\.0).filter { requestedEntries?.contains($0) ?? true }
        let program = siblingPath("mp-bench-cluster")
        guard access(program, X_OK) == 0 else {
            throw BenchSetupError(
                "the cluster entries need \(program): build it beside mp-bench (`swift build -c release`)")
        }
        let (status, output) = runProgram([program, "--only", names.joined(separator: ",")])
        guard status == 0 else { throw BenchSetupError("mp-bench-cluster exited with \(status)") }
        var measured: [String: Double] = [:]
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == 6, let figure = Double(fields[3]) else { continue }
            measured[fields[0]] = figure
            if let peer = Double(fields[4]) {
                peerFigures.withLock { $0[fields[0]] = (peer, fields[5]) }
            }
        }
        return measured
    }

    /// A program in this executable's directory.
    private static func siblingPath(_ program: String) -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return program }
        let path = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let slash = path.lastIndex(of: "/") else { return program }
        return String(path[..<slash]) + "/" + program
    }
}
