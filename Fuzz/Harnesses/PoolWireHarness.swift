/// Harness `poolwire`: the pool protocol's frames (see `PoolWire`), read with `WireReader`
/// exactly as `PoolWorker` reads `install` and `jobs` frames and `WorkerDriver` reads `results`
/// frames, with every blob decoded as the pool decodes it (`[Int]` inputs and outputs,
/// `[ItemOutcome<Int>]` and `ErrorReport` failures). The reading loops are mirrored here because
/// the real ones are interleaved with running jobs and the pool's state.
enum PoolWireHarness {
    static func run(_ data: UnsafeRawBufferPointer) {
        let payload = Array(data)
        var reader = WireReader(payload)
        do throws(CodecError) {
            switch try reader.byte() {
            case PoolWire.install:
                _ = try reader.varint()
                _ = try reader.string()
                _ = try reader.data()
            case PoolWire.jobs:
                while !reader.isAtEnd {
                    _ = try reader.varint()
                    let count = try reader.count()
                    var ids: [UInt64] = []
                    var itemEnds: [Int] = []
                    ids.reserveCapacity(count)
                    itemEnds.reserveCapacity(count)
                    var items = 0
                    for _ in 0..<count {
                        ids.append(try reader.varint())
                        let word = try reader.varint()
                        let jobItems = Int(clamping: word >> 1)
                        if word & 1 == 1 {
                            for _ in 0..<(try reader.count()) {
                                // The worker fails these jobs with a protocol error.
                                guard try reader.count() < jobItems else { return }
                            }
                        }
                        guard jobItems <= payload.count else { return }
                        items += jobItems
                        itemEnds.append(items)
                    }
                    let inputs = try reader.blob()
                    if let decoded = decode([Int].self, payload, inputs), decoded.count != items {
                        _ = decoded  // The worker fails these jobs with a protocol error.
                    }
                }
            case PoolWire.results:
                while !reader.isAtEnd {
                    let n = try reader.count()
                    guard n > 0 else { return }
                    if n == 1, reader.byteAfterVarint() == PoolWire.Status.partial.rawValue {
                        _ = try reader.varint()
                        _ = try reader.byte()
                        _ = try reader.varint()
                        _ = decode([ItemOutcome<Int>].self, payload, try reader.blob())
                        continue
                    }
                    var anyValues = false
                    for _ in 0..<n {
                        _ = try reader.varint()
                        guard let status = PoolWire.Status(rawValue: try reader.byte()) else { return }
                        switch status {
                        case .values:
                            anyValues = true
                        case .mixed:
                            _ = decode([ItemOutcome<Int>].self, payload, try reader.blob())
                        case .failed:
                            _ = decode(ErrorReport.self, payload, try reader.blob())
                        case .partial:
                            return  // The driver kills a worker that sends this inside a run.
                        }
                    }
                    if anyValues { _ = decode([Int].self, payload, try reader.blob()) }
                }
            default:
                return
            }
        } catch {
            return
        }
    }

    static func decode<T: Decodable>(_: T.Type, _ payload: [UInt8], _ range: Range<Int>) -> T? {
        payload.withUnsafeBytes { raw in
            try? BinaryDecoder().decode(T.self, from: UnsafeRawBufferPointer(rebasing: raw[range]))
        }
    }

    static func seeds() -> [[UInt8]] {
        func blob(_ bytes: [UInt8]) -> [UInt8] {
            var out: [UInt8] = []
            WireWriter.appendBlob(bytes, to: &out)
            return out
        }
        func varint(_ value: UInt64) -> [UInt8] {
            var out: [UInt8] = []
            WireWriter.appendVarint(value, to: &out)
            return out
        }
        let inputs = try! BinaryEncoder().encode([1, 2, 3, 4, 5])
        let outcomes = try! BinaryEncoder().encode([
            ItemOutcome<Int>.value(1), .error(ErrorReport(message: "boom")),
        ])
        let report = try! BinaryEncoder().encode(ErrorReport(message: "gone"))
        var install: [UInt8] = [PoolWire.install] + varint(1)
        WireWriter.appendString("4main6SquareV", to: &install)
        WireWriter.appendBytes([0], to: &install)
        return [
            install,
            // jobs: one run of function 1, jobs 10 (2 items) and 11 (3 items, item 1 already
            // answered: skipped), then a second run. A job word is `items << 1 | hasSkips`.
            [PoolWire.jobs] + varint(1) + varint(2) + varint(10) + varint(2 << 1) + varint(11)
                + varint(3 << 1 | 1) + varint(1) + varint(1) + blob(inputs)
                + varint(2) + varint(1) + varint(12) + varint(0) + blob(try! BinaryEncoder().encode([Int]())),
            // results: a partial answer of job 10 (its items from position 1 on).
            [PoolWire.results] + varint(1) + varint(10) + [PoolWire.Status.partial.rawValue] + varint(1)
                + blob(outcomes),
            // results: two jobs with values, then a mixed one and a failed one.
            [PoolWire.results] + varint(2) + varint(10) + [0] + varint(11) + [0] + blob(inputs),
            [PoolWire.results] + varint(2) + varint(12) + [1] + blob(outcomes) + varint(13) + [2]
                + blob(report),
            [PoolWire.ready],
            [PoolWire.shutdown],
        ]
    }
}
