import BenchSupport
import Multiprocessing

// Queues: one producer process streaming items to one consumer through a queue, against
// CPython's `multiprocessing.Queue` doing the same; and through a JoinableQueue, each item marked
// done, against CPython's `JoinableQueue`.

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

/// Puts a warm-up item, then `count` small integers, into a JoinableQueue.
struct JoinableIntProducer: ProcessTask {
    var queue: JoinableQueue<Int>
    var count: Int
    func run() async throws {
        try queue.putBlocking(-1)
        for i in 0..<count { try queue.putBlocking(i) }
    }
}

/// Items per second taken and marked done (`get` + `taskDone`) by this process from a producer
/// child through a JoinableQueue made with `policy` (median of five runs): the cost of the
/// record of who holds what.
func joinableSmall(count: Int, policy: AbandonedItemPolicy) async throws -> Double {
    var rates: [Double] = []
    for _ in 0..<5 {
        let queue = try JoinableQueue<Int>(unfinishedItemsOfDeadConsumers: policy)
        let producer = try ChildProcess(JoinableIntProducer(queue: queue, count: count))
        try await producer.start()
        _ = try queue.getBlocking()
        try queue.taskDone()
        let start = ContinuousClock.now
        var sum = 0
        for _ in 0..<count {
            sum &+= try queue.getBlocking()
            try queue.taskDone()
        }
        rates.append(Double(count) / seconds(ContinuousClock.now - start))
        try await producer.value
        try queue.joinBlocking()
        precondition(sum == count * (count - 1) / 2, "lost or repeated items")
    }
    return median(rates)
}

/// Items per second from a producer child to this process (median of five runs), timed from
/// the warm-up item, so process start-up is not counted.
func queueSmall(count: Int) async throws -> Double {
    var rates: [Double] = []
    for _ in 0..<5 {
        let queue = try ProcessQueue<Int>()
        let producer = try ChildProcess(IntProducer(queue: queue, count: count))
        try await producer.start()
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
        try await producer.start()
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
    ("joinable_report", "items/s", "higher", { try await joinableSmall(count: 100_000, policy: .report) }),
    ("joinable_requeue", "items/s", "higher", { try await joinableSmall(count: 100_000, policy: .requeue) }),
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

        def _joinable_producer(q, n):
            q.put(-1)
            for i in range(n): q.put(i)

        def joinable_rate(n):
            rates = []
            for _ in range(5):
                q = mp.JoinableQueue()
                p = mp.Process(target=_joinable_producer, args=(q, n)); p.start()
                q.get(); q.task_done()
                t = time.perf_counter()
                for _ in range(n):
                    q.get(); q.task_done()
                dt = time.perf_counter() - t
                p.join()
                rates.append(n / dt)
            return statistics.median(rates)

        # CPython's JoinableQueue keeps no record of holders: both compare with the same figure.
        BENCH["joinable_report"] = lambda: joinable_rate(100_000)
        BENCH["joinable_requeue"] = lambda: joinable_rate(100_000)
        """#
}
