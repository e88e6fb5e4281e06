import BenchSupport

// mp-bench-cluster: the cluster entries of mp-bench (MultiprocessingPostgres against PgQueuer),
// in a binary of their own. MultiprocessingPostgres brings SwiftNIO, postgres-nio, Foundation
// and ICU: linked into mp-bench, every child it spawns loaded them, and the core's start figures
// measured that instead of a core-only program (BENCHMARKS.md). mp-bench runs this binary for
// its cluster entries; `mp-bench-cluster --only a,b` prints one line per entry:
// name, unit, better, figure, and the peer's figure and name when there is one (tab-separated).

for (name, unit, better, measure) in clusterCatalogue where requestedEntries?.contains(name) ?? true {
    let figure = try await measure()
    let peer = peerFigures.withLock { $0[name] }
    let fields = [name, unit, better, "\(figure)", peer.map { "\($0.value)" } ?? "", peer?.peer ?? ""]
    print(fields.joined(separator: "\t"))
}
