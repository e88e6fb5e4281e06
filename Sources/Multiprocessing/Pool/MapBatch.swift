import Synchronization

/// Gathers the chunks of one `map`: one object for the whole map rather than a future per
/// chunk, because with a chunk size of 1 the per-chunk bookkeeping is the parent's main cost.
final class MapCollector<Output: Sendable>: Sendable {
    private struct State {
        var chunks: [ChunkValues<Output>?]
        var failures: [Int: any Error] = [:]
        var remaining: Int
    }

    private let state: Mutex<State>
    private let jobs = Mutex<[PoolJob]>([])
    /// Fires when every chunk is in, or (for a fail-fast map) at the first failure.
    let settled = OneShotEvent()
    let itemCounts: [Int]
    private let failFast: Bool

    init(itemCounts: [Int], failFast: Bool) {
        self.itemCounts = itemCounts
        self.failFast = failFast
        state = Mutex(
            State(chunks: Array(repeating: nil, count: itemCounts.count), remaining: itemCounts.count))
        if itemCounts.isEmpty { settled.fire() }
    }

    func track(_ jobs: [PoolJob]) { self.jobs.withLock { $0 = jobs } }

    func store(_ index: Int, _ result: Result<ChunkValues<Output>, any Error>) {
        let fire = state.withLock { s -> Bool in
            var failed = false
            switch result {
            case .success(let values):
                s.chunks[index] = values
                if case .mixed(let results) = values,
                    let error = results.lazy.compactMap({ result -> (any Error)? in
                        if case .failure(let error) = result { return error }
                        return nil
                    }).first
                {
                    s.failures[index] = error
                    failed = true
                }
            case .failure(let error):
                s.failures[index] = error
                failed = true
            }
            s.remaining -= 1
            return s.remaining == 0 || (failFast && failed)
        }
        if fire { settled.fire() }
    }

    /// Cancels every chunk not yet finished.
    func cancelAll(_ registry: WorkerRegistry, grace: Duration) {
        for job in jobs.withLock({ $0 }) {
            if let pid = job.cancel() { registry.worker(pid)?.stop(.cancelled, grace: grace) }
        }
    }

    /// The values in input order, or the error of the lowest failing item.
    func values() throws -> [Output] {
        try state.withLock { s throws -> [Output] in
            if let first = s.failures.keys.min() { throw s.failures[first]! }
            var outputs: [Output] = []
            outputs.reserveCapacity(itemCounts.reduce(0, +))
            for chunk in s.chunks {
                switch chunk {
                case .values(let values)?: outputs += values
                case .mixed(let results)?: for result in results { outputs.append(try result.get()) }
                case nil: throw PoolError.cancelled
                }
            }
            return outputs
        }
    }

    /// One result per item, in input order.
    func results() -> [Result<Output, any Error>] {
        state.withLock { s in
            var results: [Result<Output, any Error>] = []
            for (index, chunk) in s.chunks.enumerated() {
                if let chunk {
                    results += chunk.results
                } else {
                    let error = s.failures[index] ?? PoolError.cancelled
                    results += Array(repeating: .failure(error), count: itemCounts[index])
                }
            }
            return results
        }
    }
}
