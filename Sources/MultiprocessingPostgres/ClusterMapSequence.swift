import Multiprocessing
import Synchronization

/// The results of a streaming cluster map (``ClusterPool/orderedMap(_:over:options:window:)``
/// and ``ClusterPool/unorderedMap(_:over:options:window:)``): an `AsyncSequence` that stores
/// inputs only as results are consumed, at most `window` tasks at a time, in batches.
///
/// An item whose task failed throws from `next()` and ends the iteration; tasks still on the
/// queue are cancelled, as they are when the iterator is dropped early.
public struct ClusterMapSequence<F: ProcessFunction, Inputs: Sequence>: AsyncSequence
where Inputs.Element == F.Input {
    /// One result.
    public typealias Element = F.Output

    let pool: ClusterPool
    let function: F
    let inputs: Inputs
    let options: ClusterTaskOptions
    let window: Int
    let ordered: Bool

    /// Makes the iterator; nothing is stored before the first `next()`.
    public func makeAsyncIterator() -> AsyncIterator {
        var options = options
        options.deduplicationKey = nil
        return AsyncIterator(
            pool: pool, function: function, source: inputs.makeIterator(), options: options,
            window: Swift.max(1, window), ordered: ordered)
    }

    /// Pulls results, storing more inputs as room frees up.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let pool: ClusterPool
        let function: F
        var source: Inputs.Iterator
        let options: ClusterTaskOptions
        let window: Int
        let ordered: Bool
        let arrivals: StreamArrivals<F.Output>
        var exhausted = false
        var submitted = 0
        var yielded = 0

        init(
            pool: ClusterPool, function: F, source: Inputs.Iterator, options: ClusterTaskOptions, window: Int,
            ordered: Bool
        ) {
            self.pool = pool
            self.function = function
            self.source = source
            self.options = options
            self.window = window
            self.ordered = ordered
            arrivals = StreamArrivals(pool: pool)
        }

        /// The next result, or `nil` when every input has been mapped.
        public mutating func next() async throws -> F.Output? {
            do {
                try await topUp()
                if yielded == submitted { return nil }
                let result = try await arrivals.next(ordered ? yielded : nil)
                yielded += 1
                return try result.get()
            } catch {
                exhausted = true
                arrivals.cancelRest()
                throw error is CancellationError ? PoolError.cancelled : error
            }
        }

        /// Stores inputs once at most half the window is in flight, up to a full window, in one
        /// statement per batch.
        private mutating func topUp() async throws {
            let inFlight = submitted - yielded
            guard !exhausted, inFlight * 2 <= window else { return }
            var items: [F.Input] = []
            while inFlight + items.count < window, let item = source.next() { items.append(item) }
            if items.isEmpty {
                exhausted = true
                return
            }
            let first = submitted
            let ids = try await pool.enqueue(function, items, options: options)
            submitted += items.count
            arrivals.track(ids)
            for (offset, id) in ids.enumerated() {
                let index = first + offset
                let arrivals = self.arrivals
                pool.router.wait(for: [id]) { [weak arrivals] row in
                    arrivals?.add(index, id, row.outcome(as: F.Output.self))
                }
            }
        }
    }
}

/// Results of a streaming map as they arrive, and the ids still out.
final class StreamArrivals<Output: Sendable>: Sendable {
    private struct State {
        var arrived: [Int: Result<Output, any Error>] = [:]
        var order: [Int] = []
        var outstanding = Set<Int64>()
    }

    private let state = Mutex(State())
    private let wake = Wakeup()
    let pool: ClusterPool

    init(pool: ClusterPool) { self.pool = pool }

    func track(_ ids: [Int64]) { state.withLock { $0.outstanding.formUnion(ids) } }

    func add(_ index: Int, _ id: Int64, _ result: Result<Output, any Error>) {
        state.withLock { state in
            state.outstanding.remove(id)
            state.arrived[index] = result
            state.order.append(index)
        }
        wake.signal()
    }

    /// Item `index`'s result, or (with `nil`) the next to arrive.
    func next(_ index: Int?) async throws -> Result<Output, any Error> {
        while true {
            let found = state.withLock { state -> Result<Output, any Error>? in
                if let index {
                    guard let result = state.arrived.removeValue(forKey: index) else { return nil }
                    state.order.removeAll { $0 == index }
                    return result
                }
                while let first = state.order.first {
                    state.order.removeFirst()
                    if let result = state.arrived.removeValue(forKey: first) { return result }
                }
                return nil
            }
            if let found { return found }
            try Task.checkCancellation()
            await wake.wait(upTo: .seconds(1))
        }
    }

    /// Cancels the tasks whose results did not come yet.
    func cancelRest() {
        let ids = state.withLock { state in
            defer { state.outstanding = [] }
            return Array(state.outstanding)
        }
        guard !ids.isEmpty else { return }
        Task { _ = try? await pool.cancel(ids.map { ClusterTaskID($0) }) }
    }

    deinit {
        // An iterator dropped before the end leaves nothing running.
        cancelRest()
    }
}
