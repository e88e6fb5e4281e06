import Multiprocessing

/// Several inputs of one map stored in one task row, and their outcomes stored in its result:
/// what a map with a chunk size above one enqueues. The row's task name is the function's
/// followed by `[]` (``clusterChunkName(of:)``), so that only workers that know chunks claim it.
///
/// The input is the items' encodings, each on its own (so that a chunk can be cut by bytes and
/// an item that does not decode names itself); the result is one ``Item`` per input, in order.
enum MapChunk {
    /// One item's outcome in a chunk's result.
    enum Item: Codable, Sendable {
        /// The encoded output.
        case value([UInt8])
        /// The error the item threw (or ended with).
        case error(ErrorEnvelope)
    }

    /// The most items the automatic chunk size puts in one row.
    static let automaticLimit = 64
    /// A chunk takes no more items once its inputs' encodings reach this many bytes (one input
    /// larger than that gets a row of its own).
    static let byteLimit = 64 << 10

    /// CPython's rule for `Pool.map` (about four chunks per worker slot), with the live worker
    /// slots serving the queue as the pool, and at most ``automaticLimit`` items per chunk. With
    /// no live worker the pool is unknown (workers often start after the producer): one item
    /// per task, so that however many come, all of them get work.
    static func automaticSize(items: Int, slots: Int) -> Int {
        guard slots > 0 else { return 1 }
        let chunks = 4 * slots
        return min(automaticLimit, max(1, (items + chunks - 1) / chunks))
    }

    /// Index ranges of `sizes` (each item's encoded bytes): at most `size` items, and at most
    /// ``byteLimit`` bytes unless one item alone is larger.
    static func ranges(sizes: [Int], size: Int) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var start = 0
        var bytes = 0
        for (index, itemBytes) in sizes.enumerated() {
            if index > start && (index - start == size || bytes + itemBytes > byteLimit) {
                ranges.append(start..<index)
                start = index
                bytes = 0
            }
            bytes += itemBytes
        }
        if start < sizes.count { ranges.append(start..<sizes.count) }
        return ranges
    }

    /// A finished chunk row's outcome for each of its `count` items: the stored per-item
    /// outcomes when the chunk ran, otherwise the row's own failure for every item.
    static func outcomes<Output: Decodable>(of row: FinishedTask, count: Int, as type: Output.Type)
        -> [Result<Output, any Error>]
    {
        if let bytes = row.result, !bytes.isEmpty, row.state != "cancelled" {
            let items: [Item]
            do {
                items = try BinaryDecoder().decode([Item].self, from: bytes)
            } catch {
                let failure = ClusterError.undecodableResult(task: row.id, reason: "\(error)")
                return Array(repeating: .failure(failure), count: count)
            }
            guard items.count == count else {
                let failure = ClusterError.undecodableResult(
                    task: row.id, reason: "\(items.count) outcomes for a chunk of \(count) items")
                return Array(repeating: .failure(failure), count: count)
            }
            return items.map { item in
                switch item {
                case .value(let output):
                    do {
                        return .success(try BinaryDecoder().decode(Output.self, from: output))
                    } catch {
                        return .failure(ClusterError.undecodableResult(task: row.id, reason: "\(error)"))
                    }
                case .error(let envelope):
                    return .failure(envelope.error)
                }
            }
        }
        let failure: any Error = row.state == "cancelled" ? PoolError.cancelled : row.failure
        return Array(repeating: .failure(failure), count: count)
    }
}

/// A chunk whose items did not all succeed: the first failure is the attempt's error (so the
/// chunk is tried again while attempts remain), and every item's outcome is kept for the row.
struct ChunkItemsFailed: Error {
    let first: any Error
    let outcomes: [UInt8]
}

/// The queue name of a chunk of `type`'s inputs.
func clusterChunkName<F: ProcessFunction>(of type: F.Type) -> String { clusterTaskName(of: type) + "[]" }
