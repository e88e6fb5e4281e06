import Multiprocessing

// Queues: one producer process streaming items to one consumer through a queue, against
// CPython's `multiprocessing.Queue` doing the same.

/// Puts a warm-up item, then `count` small integers.
struct IntProducer: ProcessTask {
    var queue: ProcessQueue<Int>
    var count: Int
    func run() async throws {
        try queue.putBlocking(-1)
        for i in 0..<count { try queue.putBlocking(i) }
    }
}

/// Puts a warm-up item, then `count` byte arrays of `size` bytes.
struct BytesProducer: ProcessTask {
    var queue: ProcessQueue<[UInt8]>
    var count: Int
    var size: Int
    func run() async throws {
        let item = [UInt8](repeating: 7, count: size)
        try queue.putBlocking([])
        for _ in 0..<count { try queue.putBlocking(item) }
    }
}

/// Items per second from a producer child to this process (median of five runs), timed from
/// the warm-up item, so process start-up is not counted.
func queueSmall(count: Int) async throws -> Double {
    var rates: [Double] = []
    for _ in 0..<5 {
        let queue = try ProcessQueue<Int>()
        let producer = try ChildProcess(IntProducer(queue: queue, count: count))
        try producer.start()
        _ = try queue.getBlocking()
        let start = ContinuousClock.now
        var sum = 0
        for _ in 0..<count { sum &+= try queue.getBlocking() }
        rates.append(Double(count) / seconds(ContinuousClock.now - start))
        try await producer.value
        precondition(sum == count * (count - 1) / 2, "lost or repeated items")
    }
    return median(rates)
}

/// MB/s of `size`-byte items from a producer child to this process (median of five runs).
func queueBytes(count: Int, size: Int) async throws -> Double {
    var rates: [Double] = []
    for _ in 0..<5 {
        let queue = try ProcessQueue<[UInt8]>()
        let producer = try ChildProcess(BytesProducer(queue: queue, count: count, size: size))
        try producer.start()
        _ = try queue.getBlocking()
        let start = ContinuousClock.now
        var total = 0
        for _ in 0..<count { total += try queue.getBlocking().count }
        rates.append(Double(total) / seconds(ContinuousClock.now - start) / 1e6)
        try await producer.value
        precondition(total == count * size, "lost bytes")
    }
    return median(rates)
}

let queueCatalogue: [CatalogueEntry] = [
    ("queue_small", "items/s", "higher", { try await queueSmall(count: 100_000) }),
    ("queue_64kib", "MB/s", "higher", { try await queueBytes(count: 5_000, size: 64 << 10) }),
]

extension PythonBaseline {
    static let queueSnippet = #"""
        def _queue_producer(q, n, size):
            if size:
                item = b"x" * size
                q.put(b"")
                for _ in range(n): q.put(item)
            else:
                q.put(-1)
                for i in range(n): q.put(i)

        def queue_rate(n, size):
            rates = []
            for _ in range(5):
                q = mp.Queue()
                p = mp.Process(target=_queue_producer, args=(q, n, size)); p.start()
                q.get()
                t = time.perf_counter()
                for _ in range(n): q.get()
                dt = time.perf_counter() - t
                p.join()
                rates.append(n * size / dt / 1e6 if size else n / dt)
            return statistics.median(rates)

        BENCH["queue_small"] = lambda: queue_rate(100_000, 0)
        BENCH["queue_64kib"] = lambda: queue_rate(5_000, 64 << 10)
        """#
}
