import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

// The seeds' queue programs: a producer and a consumer around a Queue(3) with a Lock guarding
// prints, the JoinableQueue version, a log collector fed by several workers, a pool whose
// workers drain a JoinableQueue, and what CPython cannot do: a JoinableQueue whose consumer dies.

/// Prints one line while holding `lock`, so lines from different processes never interleave.
func locked(_ lock: ProcessLock, _ line: String) {
    lock.withLockBlocking {
        print(line)
        fflush(nil)
    }
}

/// CPython's `producer(q, lock)`: puts numbers, waiting whenever the queue holds 3, then
/// closes the queue (instead of putting a `None` sentinel).
struct Producer: ProcessTask {
    var queue: ProcessQueue<Int>
    var lock: ProcessLock
    var count: Int
    func run() async throws {
        for i in 0..<count {
            let item = (i * 37 + 11) % 100
            try await queue.put(item)  // Waits while the queue is full.
            locked(lock, "produced \(item)")
            try await Task.sleep(for: .milliseconds(5))
        }
        queue.close()
    }
}

/// CPython's `consumer(q, lock)`: takes items until the queue is closed and empty.
struct Consumer: ProcessTask {
    var queue: ProcessQueue<Int>
    var lock: ProcessLock
    func run() async throws {
        for try await item in queue.items {
            locked(lock, "    consumed \(item)")
            try await Task.sleep(for: .milliseconds(15))  // Slower than the producer.
        }
    }
}

/// CPython's JoinableQueue `worker(q)`: takes an item, works on it, marks it done.
struct JoinableWorker: ProcessTask {
    var queue: JoinableQueue<String>
    var lock: ProcessLock
    var number: Int
    func run() async throws {
        for try await item in queue.items {
            try await Task.sleep(for: .milliseconds(20))
            locked(lock, "worker \(number) finished \(item)")
            try queue.taskDone()
        }
    }
}

/// One log line, as a worker sends it to the collector.
struct LogRecord: Codable, Sendable {
    enum Level: String, Codable { case info, warning }
    var worker: Int
    var level: Level
    var message: String
}

/// A worker that logs through the queue instead of writing to a shared file itself.
struct LoggingWorker: ProcessTask {
    var log: ProcessQueue<LogRecord>
    var number: Int
    func run() async throws {
        try await log.put(LogRecord(worker: number, level: .info, message: "started, pid \(getpid())"))
        var x = UInt64(number + 1)
        for step in 1...3 {
            for _ in 0..<200_000 { x = x &* 6_364_136_223_846_793_005 &+ 1 }
            let level: LogRecord.Level = x % 5 == 0 ? .warning : .info
            try await log.put(LogRecord(worker: number, level: level, message: "step \(step) done"))
        }
    }
}

/// The log collector: the only process that writes the log; stops when the queue is closed.
struct LogCollector: ProcessTask {
    var log: ProcessQueue<LogRecord>
    func run() async throws -> Int {
        var lines = 0
        for try await record in log.items {
            print("  [collector] worker \(record.worker) \(record.level.rawValue): \(record.message)")
            fflush(nil)
            lines += 1
        }
        return lines
    }
}

/// A JoinableQueue worker; the first one to take `"item 2"` dies with it (SIGKILL, as the OOM
/// killer would), before marking it done.
struct FragileWorker: ProcessTask {
    var queue: JoinableQueue<String>
    var lock: ProcessLock
    var died: SharedValue<Int>
    var number: Int
    func run() async throws {
        for try await item in queue.items {
            if item == "item 2" && died.compareExchange(expected: 0, desired: Int(getpid())).exchanged {
                locked(lock, "worker \(number) (pid \(getpid())) took \(item) and is killed")
                kill(getpid(), SIGKILL)
            }
            try await Task.sleep(for: .milliseconds(20))
            locked(lock, "worker \(number) finished \(item)")
            try queue.taskDone()
        }
    }
}

/// A pool job that drains the shared JoinableQueue: the queue is a stored property of the
/// function, so its descriptors travel to every worker with the function.
struct DrainJobs: ProcessFunction {
    var jobs: JoinableQueue<Int>
    var lock: ProcessLock
    func callAsFunction(_ slot: Int) async throws -> Int {
        var done = 0
        for try await job in jobs.items {
            try await Task.sleep(for: .milliseconds(10))
            locked(lock, "  pool worker \(getpid()) (slot \(slot)): \(job)² = \(job * job)")
            try jobs.taskDone()
            done += 1
        }
        return done
    }
}

let queueExamples: [Example] = [
    (
        "queue-producer-consumer", "a producer and a consumer around Queue(3), a Lock guarding prints",
        {
            let queue = try ProcessQueue<Int>(capacity: 3)
            let lock = try ProcessLock()
            let producer = try ChildProcess(Producer(queue: queue, lock: lock, count: 8))
            let consumer = try ChildProcess(Consumer(queue: queue, lock: lock))
            try await producer.start()
            try await consumer.start()
            try await producer.value
            try await consumer.value
            // CPython's put_nowait raising queue.Full, as a typed error.
            let full = try ProcessQueue<Int>(capacity: 3)
            for i in 1...3 { try full.putNowait(i) }
            do {
                try full.putNowait(4)
            } catch QueueError.full {
                say("put_nowait(4) on a queue holding 3 of 3: QueueError.full")
            }
            do {
                _ = try ProcessQueue<Int>(capacity: 3).getNowait()
            } catch QueueError.empty {
                say("get_nowait() on an empty queue: QueueError.empty")
            }
        }
    ),
    (
        "queue-joinable", "JoinableQueue: workers mark items done, join waits for all of them",
        {
            let queue = try JoinableQueue<String>()
            let lock = try ProcessLock()
            let workers = try (1...3).map {
                try ChildProcess(JoinableWorker(queue: queue, lock: lock, number: $0))
            }
            for worker in workers { try await worker.start() }
            for item in 0..<9 { try await queue.put("item \(item)") }
            try await queue.join()  // Every item has been taken and marked done.
            locked(lock, "all work completed (\(queue.unfinishedCount) unfinished)")
            queue.close()  // The workers' loops end; nothing is left running.
            for worker in workers { try await worker.value }
        }
    ),
    (
        "queue-dead-consumer", "JoinableQueue: a consumer killed holding an item; join still ends",
        {
            for (name, policy) in [("requeue", AbandonedItemPolicy.requeue), ("report", .report)] {
                say("unfinishedItemsOfDeadConsumers: .\(name)")
                let queue = try JoinableQueue<String>(unfinishedItemsOfDeadConsumers: policy)
                let lock = try ProcessLock()
                let died = try SharedValue(0)
                let workers = try (1...2).map {
                    try ChildProcess(FragileWorker(queue: queue, lock: lock, died: died, number: $0))
                }
                for worker in workers { try await worker.start() }
                for item in 0..<5 { try await queue.put("item \(item)") }
                do {
                    try await queue.join()  // CPython's join would wait forever here.
                    locked(lock, "all done: \(queue.requeuedCount) item put back after its consumer died")
                } catch QueueError.abandoned(let lost) {
                    locked(lock, "join ended: \(lost)")
                }
                queue.close()
                for worker in workers { _ = try await worker.join() }
            }
        }
    ),
    (
        "queue-log-collector", "a log collector process fed by a queue from several workers",
        {
            let log = try ProcessQueue<LogRecord>()
            let collector = try ChildProcess(LogCollector(log: log), name: "collector")
            try await collector.start()
            let workers = try (0..<4).map { try ChildProcess(LoggingWorker(log: log, number: $0)) }
            for worker in workers { try await worker.start() }
            for worker in workers { try await worker.value }
            log.close()
            say("the collector wrote \(try await collector.value) lines")
        }
    ),
    (
        "queue-pool", "a process pool whose workers drain a JoinableQueue",
        {
            let jobs = try JoinableQueue<Int>(capacity: 4)
            let lock = try ProcessLock()
            try await withProcessPool(workers: 2) { pool in
                // One long-running job per worker; each takes items until the queue closes.
                async let perWorker = pool.map(DrainJobs(jobs: jobs, lock: lock), over: 0..<2, chunkSize: 1)
                for job in 1...10 { try await jobs.put(job) }  // Waits while 4 are queued.
                try await jobs.join()
                jobs.close()
                say("all 10 jobs done; per worker: \(try await perWorker)")
            }
        }
    ),
]
