import Synchronization

/// The jobs of one `map`, one per chunk, and the place their results gather.
///
/// One object for the whole map rather than a future per chunk, and the inputs and outputs of a
/// run of chunks travel as one encoded array each, because with a chunk size of 1 any per-chunk
/// generic work is the parent's main cost. Inputs are encoded when a driver sends them.
final class MapBatch<F: ProcessFunction>: JobBatch, @unchecked Sendable {
    typealias Output = F.Output

    private struct State {
        /// Decoded runs of outputs, in arrival order.
        var segments: [[Output]] = []
        /// Per chunk: the segment holding its outputs (`-1`: none, `-2`: see `mixed`)...
        var segment: [Int]
        /// ...and where in it they start.
        var offset: [Int]
        /// Chunks of which some items failed: one result per item.
        var mixed: [Int: [Result<Output, any Error>]] = [:]
        /// Per failed chunk, its (first) error.
        var failures: [Int: any Error] = [:]
        var remaining: Int
        var completedItems = 0
        /// The jobs, for cancelling; dropped once all have ended (they refer to the batch).
        var jobs: [PoolJob] = []
    }

    private let items: [F.Input]
    let chunkSize: Int
    let chunkCount: Int
    private let failFast: Bool
    private let progress: (@Sendable (PoolProgress) -> Void)?
    private let state: Mutex<State>
    /// Fires when every chunk is in, or (for a fail-fast map) at the first failure.
    let settled = OneShotEvent()

    init(
        core: PoolCore, function: InstalledFunction, items: [F.Input], chunkSize: Int, failFast: Bool,
        progress: (@Sendable (PoolProgress) -> Void)?
    ) {
        self.items = items
        self.chunkSize = chunkSize
        let chunks = (items.count + chunkSize - 1) / chunkSize
        self.chunkCount = chunks
        self.failFast = failFast
        self.progress = progress
        state = Mutex(
            State(
                segment: Array(repeating: -1, count: chunks), offset: Array(repeating: 0, count: chunks),
                remaining: chunks))
        super.init(core: core, function: function)
        if chunks == 0 { settled.fire() }
    }

    /// One job per chunk, remembered for ``cancelAll(_:grace:)``.
    func makeJobs() -> [PoolJob] {
        let first = core.newJobIDs(chunkCount)
        var jobs: [PoolJob] = []
        jobs.reserveCapacity(chunkCount)
        for index in 0..<chunkCount {
            jobs.append(PoolJob(id: first + UInt64(index), batch: self, index: index))
        }
        state.withLock { $0.jobs = jobs }
        return jobs
    }

    /// Forgets the jobs (they were never queued).
    func dropJobs() { state.withLock { $0.jobs = [] } }

    override func itemCount(_ index: Int) -> Int { min(chunkSize, items.count - index * chunkSize) }

    override func label(_ index: Int) -> String {
        JobLabel.items(start: index * chunkSize, count: itemCount(index)).description
    }

    override func itemLabel(_ index: Int, _ position: Int) -> String {
        "#\(index * chunkSize + position)"
    }

    private func itemRange(_ index: Int) -> Range<Int> {
        (index * chunkSize)..<min(items.count, (index + 1) * chunkSize)
    }

    override func appendInputs(of jobs: ArraySlice<PoolJob>, to frame: inout [UInt8]) throws(CodecError) {
        guard let first = jobs.first?.index else { return }
        var contiguous = true
        for (k, job) in jobs.enumerated() where job.index != first + k {
            contiguous = false
            break
        }
        let encoder = BinaryEncoder()
        if contiguous {
            let range = itemRange(first).lowerBound..<itemRange(first + jobs.count - 1).upperBound
            if range == items.indices {
                try encoder.encode(items, appendingTo: &frame)
            } else {
                try encoder.encode(Array(items[range]), appendingTo: &frame)
            }
        } else {
            var gathered: [F.Input] = []
            for job in jobs { gathered += items[itemRange(job.index)] }
            try encoder.encode(gathered, appendingTo: &frame)
        }
    }

    override func deliver(_ run: ResultRun) {
        var needed = 0
        var wanted = false
        for entry in run.entries where entry.status == .values {
            needed += itemCount(entry.job.index)
            if entry.claimed && entry.override == nil { wanted = true }
        }
        // Decoding happens outside the lock: one call for all the run's plain values.
        let decoded = wanted ? JobDecoding.values(run, expected: needed, as: Output.self) : .success([])
        var others: [Int: Result<ChunkValues<Output>, any Error>] = [:]
        for (position, entry) in run.entries.enumerated()
        where entry.claimed && entry.override == nil && entry.status != .values {
            others[position] = JobDecoding.applying(
                entry.itemOverrides,
                to: JobDecoding.other(entry.status, run.payload, entry.blob, as: Output.self))
        }
        let (fire, progressed) = state.withLock { s -> (Bool, [Int]) in
            var segment = -1
            if case .success(let values) = decoded, !values.isEmpty {
                segment = s.segments.count
                s.segments.append(values)
            }
            var offset = 0
            var failed = false
            var progressed: [Int] = []
            for (position, entry) in run.entries.enumerated() {
                let chunk = entry.job.index
                let count = itemCount(chunk)
                let start = offset
                if entry.status == .values { offset += count }
                guard entry.claimed else { continue }
                s.remaining -= 1
                s.completedItems += count
                if progress != nil { progressed.append(s.completedItems) }
                if let override = entry.override {
                    s.failures[chunk] = override
                    failed = true
                } else if entry.status == .values {
                    switch decoded {
                    case .success(let values) where !entry.itemOverrides.isEmpty:
                        // A worker that ran items it was told to skip: the verdicts stand.
                        let chunkValues = ChunkValues.values(Array(values[start..<(start + count)]))
                        if Self.store(
                            JobDecoding.applying(entry.itemOverrides, to: .success(chunkValues)), chunk,
                            in: &s)
                        {
                            failed = true
                        }
                    case .success:
                        s.segment[chunk] = segment
                        s.offset[chunk] = start
                    case .failure(let error):
                        s.failures[chunk] = error
                        failed = true
                    }
                } else if Self.store(others[position]!, chunk, in: &s) {
                    failed = true
                }
            }
            return (settle(&s, failed: failed), progressed)
        }
        report(progressed)
        if fire { settled.fire() }
    }

    override func partialResults(_ payload: [UInt8], _ blob: Range<Int>) throws -> [Result<
        any Sendable, any Error
    >?] {
        try JobDecoding.partial(payload, blob, as: Output.self)
    }

    override func fail(_ index: Int, _ error: any Error) {
        let count = itemCount(index)
        let (fire, completed) = state.withLock { s -> (Bool, Int) in
            s.failures[index] = error
            s.remaining -= 1
            s.completedItems += count
            return (settle(&s, failed: true), s.completedItems)
        }
        report([completed])
        if fire { settled.fire() }
    }

    /// Whether the map is settled; drops the jobs once none is left.
    private func settle(_ s: inout State, failed: Bool) -> Bool {
        if s.remaining == 0 {
            s.jobs = []
            return true
        }
        return failFast && failed
    }

    private func report(_ completed: [Int]) {
        guard let progress else { return }
        for done in completed { progress(PoolProgress(completed: done, total: items.count)) }
    }

    /// Records a chunk's answer other than plain values; `true` if an item failed.
    private static func store(
        _ result: Result<ChunkValues<Output>, any Error>, _ chunk: Int, in s: inout State
    )
        -> Bool
    {
        switch result {
        case .success(let values):
            let results = values.results
            s.mixed[chunk] = results
            s.segment[chunk] = -2
            for case .failure(let error) in results {
                s.failures[chunk] = error
                return true
            }
            return false
        case .failure(let error):
            s.failures[chunk] = error
            return true
        }
    }

    /// Cancels every chunk not yet finished.
    func cancelAll(_ registry: WorkerRegistry, grace: Duration) {
        for job in state.withLock({ $0.jobs }) {
            if let pid = job.cancel() { registry.worker(pid)?.stop(.cancelled, grace: grace) }
        }
    }

    /// The values in input order, or the error of the lowest failing item.
    func values() throws -> [Output] {
        try state.withLock { s throws -> [Output] in
            if let first = s.failures.keys.min() { throw s.failures[first]! }
            var outputs: [Output] = []
            var chunk = 0
            while chunk < chunkCount {
                let segment = s.segment[chunk]
                if segment == -2 {
                    if outputs.isEmpty { outputs.reserveCapacity(items.count) }
                    for result in s.mixed[chunk]! { outputs.append(try result.get()) }
                    chunk += 1
                    continue
                }
                guard segment >= 0 else { throw PoolError.cancelled }
                // Consecutive chunks that arrived together are copied in one piece.
                let start = s.offset[chunk]
                var end = start + itemCount(chunk)
                chunk += 1
                while chunk < chunkCount, s.segment[chunk] == segment, s.offset[chunk] == end {
                    end += itemCount(chunk)
                    chunk += 1
                }
                if start == 0 && chunk == chunkCount && outputs.isEmpty && end == s.segments[segment].count {
                    return s.segments[segment]  // Every chunk arrived in one run, in order.
                }
                if outputs.isEmpty { outputs.reserveCapacity(items.count) }
                outputs += s.segments[segment][start..<end]
            }
            return outputs
        }
    }

    /// One result per item, in input order.
    func results() -> [Result<Output, any Error>] {
        state.withLock { s in
            var results: [Result<Output, any Error>] = []
            results.reserveCapacity(items.count)
            for chunk in 0..<chunkCount {
                let count = itemCount(chunk)
                switch s.segment[chunk] {
                case -2:
                    results += s.mixed[chunk]!
                case let segment where segment >= 0:
                    let start = s.offset[chunk]
                    for value in s.segments[segment][start..<(start + count)] {
                        results.append(.success(value))
                    }
                default:
                    let error = s.failures[chunk] ?? PoolError.cancelled
                    results += Array(repeating: .failure(error), count: count)
                }
            }
            return results
        }
    }
}
