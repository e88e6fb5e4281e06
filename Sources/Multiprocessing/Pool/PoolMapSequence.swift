import Synchronization

/// The results of a streaming map (``ProcessPool/orderedMap(_:over:chunkSize:)`` and
/// ``ProcessPool/unorderedMap(_:over:chunkSize:)``): an `AsyncSequence` that pulls inputs only as
/// results are consumed, keeping a few chunks per worker in flight.
///
/// An item whose function threw (or whose worker died) throws from `next()` and ends the
/// iteration; chunks still in flight are cancelled. Cancelling the iterating task does the same
/// at once: `next()` throws ``PoolError/cancelled`` without waiting for a chunk to finish.
public struct PoolMapSequence<F: ProcessFunction, Inputs: Sequence>: AsyncSequence
where Inputs.Element == F.Input {
    /// One result.
    public typealias Element = F.Output

    let pool: ProcessPool
    let function: F
    let inputs: Inputs
    let chunkSize: Int
    let ordered: Bool

    /// Makes the iterator; nothing is submitted before the first `next()`.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(
            pool: pool, function: function, source: inputs.makeIterator(), chunkSize: Swift.max(1, chunkSize),
            ordered: ordered,
            window: Swift.max(2, pool.workerCount * 4))
    }

    /// Pulls results, submitting chunks as room frees up.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let pool: ProcessPool
        let function: F
        var source: Inputs.Iterator
        let chunkSize: Int
        let ordered: Bool
        let window: Int
        var exhausted = false
        var submitted = 0
        var nextToYield = 0
        var waiting: [Int: ChunkFuture<F.Output>] = [:]
        let arrivals = Arrivals<F.Output>()
        var buffer: ChunkValues<F.Output> = .values([])
        var bufferIndex = 0

        init(
            pool: ProcessPool, function: F, source: Inputs.Iterator, chunkSize: Int, ordered: Bool,
            window: Int
        ) {
            self.pool = pool
            self.function = function
            self.source = source
            self.chunkSize = chunkSize
            self.ordered = ordered
            self.window = window
        }

        /// The next result, or `nil` when every input has been mapped.
        public mutating func next() async throws -> F.Output? {
            while true {
                if bufferIndex < buffer.count {
                    defer { bufferIndex += 1 }
                    do {
                        return try buffer.result(at: bufferIndex).get()
                    } catch {
                        cancelAll()
                        throw error
                    }
                }
                try topUp()
                if waiting.isEmpty { return nil }
                let chunk: Result<ChunkValues<F.Output>, any Error>
                if ordered {
                    let future = waiting.removeValue(forKey: nextToYield)!
                    nextToYield += 1
                    do {
                        chunk = .success(try await future.value)
                    } catch {
                        chunk = .failure(error)
                    }
                } else if let (index, result) = await arrivals.next() {
                    waiting.removeValue(forKey: index)
                    chunk = result
                } else {
                    chunk = .failure(PoolError.cancelled)  // Not waiting for the next chunk.
                }
                switch chunk {
                case .success(let items):
                    buffer = items
                    bufferIndex = 0
                case .failure(let error):
                    cancelAll()
                    throw error
                }
            }
        }

        private mutating func topUp() throws {
            while !exhausted && waiting.count < window {
                var items: [F.Input] = []
                while items.count < chunkSize, let item = source.next() { items.append(item) }
                if items.isEmpty {
                    exhausted = true
                    break
                }
                let index = submitted
                let future = ChunkFuture<F.Output>(itemCount: items.count)
                let arrivals = self.arrivals
                let label = JobLabel.items(start: index * chunkSize, count: items.count)
                let job = try pool.makeJob(function, inputs: items, label: label) { result in
                    future.complete(result)
                    arrivals.add(index, result)
                }
                let registry = pool.registry
                let grace = pool.options.terminationGrace
                future.setCanceller {
                    if let pid = job.cancel() { registry.worker(pid)?.stop(.cancelled, grace: grace) }
                }
                try pool.core.enqueue([job])
                waiting[index] = future
                submitted += 1
            }
        }

        private mutating func cancelAll() {
            for (_, future) in waiting { future.cancel() }
            waiting.removeAll()
            exhausted = true
            buffer = .values([])
        }
    }
}

/// Chunk results in the order they arrive, for the unordered map.
final class Arrivals<Output: Sendable>: Sendable {
    typealias Item = (Int, Result<ChunkValues<Output>, any Error>)
    /// Results nobody waited for yet, and the iterating task while it waits.
    private let queue = WaiterQueue<[Item], Item>([])

    func add(_ index: Int, _ result: Result<ChunkValues<Output>, any Error>) {
        queue.withLock { l in
            if !l.resumeFirst((index, result)) { l.state.append((index, result)) }
        }
    }

    /// The next result to arrive, or `nil` when the waiting task is cancelled first.
    func next() async -> Item? {
        await queue.wait { l in l.state.isEmpty ? nil : l.state.removeFirst() }.value
    }
}
