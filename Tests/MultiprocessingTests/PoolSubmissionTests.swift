import Testing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// Puts `value` on `queue` (a task holding descriptors: CPython's `apply_async(f, (q,))`).
struct QueuePutter: ProcessTask {
    var queue: ProcessQueue<Int>
    var value: Int
    func run() async throws { try await queue.put(value) }
}

/// A task that returns nothing.
struct DoNothing: ProcessTask {
    func run() async throws {}
}

/// Returns its worker's pid after sleeping.
struct NapTask: ProcessTask {
    var seconds: Double
    func run() async throws -> Int32 {
        usleep(UInt32(seconds * 1_000_000))
        return getpid()
    }
}

@Suite("ProcessPool submissions: tasks and maps awaited later")
struct PoolSubmissionTests {
    @Test("submit and apply of a ProcessTask: a value, Void, and one holding a queue")
    func submitTask() async throws {
        try await withProcessPool(workers: 2) { (pool: ProcessPool) async throws in
            let future: PoolFuture<Int> = try pool.submit(Doubler(value: 21))
            #expect(try await future.value == 42)
            #expect(try await pool.apply(Reverser(items: [1, 2, 3])) == [3, 2, 1])
            try await pool.apply(DoNothing())
            let queue = try ProcessQueue<Int>()
            let put = try pool.submit(QueuePutter(queue: queue, value: 7))
            try await put.value
            #expect(try await queue.get(timeout: .seconds(10)) == 7)
            await #expect(throws: FixtureError.badInput("no", line: 42)) {
                try await pool.apply(CodableThrower(reason: "no"))
            }
        }
    }

    @Test("a submitted task follows the pool's failure rules: crash, time-out, cancel")
    func submitTaskFailures() async throws {
        var options = PoolOptions()
        // Long enough for a crash report on a loaded machine: the trap must not time out first.
        options.taskTimeout = .seconds(5)
        options.terminationGrace = .milliseconds(200)
        try await withProcessPool(workers: 1, options: options) { (pool: ProcessPool) async throws in
            await #expect {
                _ = try await pool.apply(Trapper(kind: .fatalError))
            } throws: { error in
                guard case PoolError.workerLost(let loss) = error else { return false }
                return loss.signal == .illegalInstruction || loss.signal == .trap
            }
            await #expect {
                _ = try await pool.apply(NapTask(seconds: 30))
            } throws: { error in
                guard case PoolError.timedOut(let task, _, _) = error else { return false }
                return task.contains("NapTask")
            }
            let slow = try pool.submit(NapTask(seconds: 0.2))
            let queued = try pool.submit(NapTask(seconds: 30))
            queued.cancel()
            await #expect(throws: PoolError.cancelled) { try await queued.value }
            _ = try await slow.value
        }
    }

    @Test("submitMap: the results, a time-out that lets the map go on, and cancel after it")
    func submitMap() async throws {
        try await withProcessPool(workers: 2) { (pool: ProcessPool) async throws in
            let squares = try pool.submitMap(Square(), over: 0..<500)
            #expect(try await squares.value == (0..<500).map { $0 * $0 })

            // Naps far longer than the wait: the wait times out, the map goes on and finishes.
            let naps = try pool.submitMap(Nap(), over: [2, 2], chunkSize: 1)
            await #expect(throws: PoolError.resultTimedOut) {
                try await naps.value(timeout: .milliseconds(20))
            }
            #expect(try await naps.value.count == 2)

            // Cancelled after a time-out: the work stops; the pool goes on.
            let long = try pool.submitMap(Nap(), over: [30, 30, 30], chunkSize: 1)
            await #expect(throws: PoolError.resultTimedOut) {
                try await long.value(timeout: .milliseconds(20))
            }
            long.cancel()
            await #expect(throws: PoolError.cancelled) { try await long.value }
            #expect(try await pool.apply(Square(), 3) == 9)

            // The first failing item fails the future.
            await #expect(throws: RemoteError.self) {
                _ = try await pool.submitMap(PlainFailure(), over: 0..<10).value
            }
        }
    }
}
