import Multiprocessing
import MultiprocessingPostgres
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The cluster against a real PostgreSQL, one test at a time: one of them restarts the server,
/// and each test's workers already use both cores.
@Suite("Cluster on PostgreSQL", .serialized)
struct ClusterTests {}

extension ClusterTests {
    @Suite("verbs, errors, options")
    struct ClusterPoolTests {
        @Test("apply, submit, value(timeout:), map, mapResults, streaming maps, progress, a renamed type")
        func verbs() async throws {
            let configuration = try await TestDatabase.configuration("verbs")
            defer { Task { await TestDatabase.drop(configuration) } }
            try await withWorker(configuration) { (_: ClusterWorker) async throws in
                try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                    #expect(try await pool.apply(CSquare(), 7) == 49)
                    #expect(try await pool.apply(Shout(), "hi") == "HI")
                    let future = try await pool.submit(CSquare(), 12)
                    #expect(try await future.value(timeout: .seconds(60)) == 144)
                    #expect(future.isDone)

                    let expected = (0..<500).map { $0 * $0 }
                    let seen = Atomic<Int>(0)
                    let squares = try await pool.map(CSquare(), over: 0..<500) { progress in
                        seen.store(progress.completed, ordering: .relaxed)
                    }
                    #expect(squares == expected)
                    #expect(seen.load(ordering: .relaxed) == 500)

                    let results = try await pool.mapResults(FailOdd(), over: 0..<20)
                    for (x, result) in results.enumerated() {
                        if x % 2 == 0 {
                            #expect(try result.get() == x)
                        } else {
                            #expect(throws: CodableFailure(code: x, reason: "odd")) { try result.get() }
                        }
                    }

                    var ordered: [Int] = []
                    for try await y in pool.orderedMap(CSquare(), over: 0..<300, window: 40) {
                        ordered.append(y)
                    }
                    #expect(ordered == (0..<300).map { $0 * $0 })
                    var unordered: [Int] = []
                    for try await y in pool.unorderedMap(CSquare(), over: 0..<300, window: 40) {
                        unordered.append(y)
                    }
                    #expect(unordered.sorted() == (0..<300).map { $0 * $0 })
                    #expect(try await pool.map(CSquare(), over: [Int]()) == [])
                }
            }
        }

        @Test("a Codable error comes back as the same value; map throws the first failure")
        func codableError() async throws {
            let configuration = try await TestDatabase.configuration("errors")
            defer { Task { await TestDatabase.drop(configuration) } }
            try await withWorker(configuration) { (_: ClusterWorker) async throws in
                try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                    var once = ClusterTaskOptions()
                    once.maxAttempts = 1
                    await #expect(throws: CodableFailure(code: 3, reason: "odd")) {
                        try await pool.apply(FailOdd(), 3, options: once)
                    }
                    await #expect(throws: CodableFailure.self) {
                        try await pool.map(FailOdd(), over: [0, 2, 5, 4], options: once)
                    }
                    // Three attempts by default: the error is the last one's.
                    let future = try await pool.submit(FailOdd(), 5)
                    await #expect(throws: CodableFailure(code: 5, reason: "odd")) { try await future.value }
                    let attempts = try await TestDatabase.query(
                        "SELECT attempt FROM \(configuration.schema).tasks WHERE id = \(future.id)")
                    #expect(attempts == ["3"])
                }
            }
        }

        @Test("options: priority, run-after, de-duplication key, per-task time-out")
        func options() async throws {
            let configuration = try await TestDatabase.configuration("options")
            defer { Task { await TestDatabase.drop(configuration) } }
            let log = RunLog("options")
            defer { log.remove() }
            try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                // Queued before any worker exists: the high priority one runs first.
                var low = ClusterTaskOptions()
                low.priority = -5
                var high = ClusterTaskOptions()
                high.priority = 10
                // Order: priority 10, then 0 (the squares), -5, -10.
                let first = try await pool.submit(LoggedNap(log: log.path, milliseconds: 0), 1, options: low)
                let second = try await pool.submit(
                    LoggedNap(log: log.path, milliseconds: 0), 2, options: high)
                var dedup = ClusterTaskOptions()
                dedup.deduplicationKey = "only-one"
                let a = try await pool.submit(CSquare(), 3, options: dedup)
                let b = try await pool.submit(CSquare(), 4, options: dedup)
                #expect(a.id == b.id)
                var later = ClusterTaskOptions()
                later.runAfter = .seconds(1)
                let delayed = try await pool.submit(CSquare(), 6, options: later)
                var short = ClusterTaskOptions()
                short.timeout = .milliseconds(200)
                short.maxAttempts = 1
                short.priority = -10
                let slow = try await pool.submit(
                    LoggedNap(log: log.path, milliseconds: 30_000), 9, options: short)

                var options = testWorkerOptions(concurrency: 1)
                options.maximumHeld = 1
                try await withWorker(configuration, options: options) { _ in
                    _ = try await (first.value, second.value)
                    #expect(try await a.value == 9)
                    #expect(try await b.value == 9)
                    #expect(try await delayed.value == 36)
                    await #expect {
                        try await slow.value
                    } throws: { error in
                        guard case PoolError.timedOut = error else { return false }
                        return true
                    }
                    #expect(log.lines.map(\.input) == [2, 1, 9])
                }
            }
        }

        @Test("a task nobody registered fails with unknownTaskName after its wait")
        func unknownName() async throws {
            let configuration = try await TestDatabase.configuration("unknown")
            defer { Task { await TestDatabase.drop(configuration) } }
            try await withWorker(configuration) { (_: ClusterWorker) async throws in
                try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                    var options = ClusterTaskOptions()
                    options.unknownNameTimeout = .milliseconds(300)
                    await #expect(
                        throws: ClusterError.unknownTaskName(
                            clusterTaskName(of: NobodyKnows.self), waited: .milliseconds(300))
                    ) {
                        try await pool.apply(NobodyKnows(), 1, options: options)
                    }
                    // A known task in the same queue is not touched.
                    #expect(try await pool.apply(CSquare(), 3, options: options) == 9)
                }
            }
        }

        @Test("cancellation: a queued task never runs, a running one is stopped on its worker")
        func cancellation() async throws {
            let configuration = try await TestDatabase.configuration("cancel")
            defer { Task { await TestDatabase.drop(configuration) } }
            let log = RunLog("cancel")
            defer { log.remove() }
            try await withWorker(configuration, options: testWorkerOptions(concurrency: 1)) {
                (worker: ClusterWorker) async throws in
                try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                    let running = try await pool.submit(LoggedNap(log: log.path, milliseconds: 600_000), 1)
                    #expect(try await eventually { log.lines.count == 1 })
                    var later = ClusterTaskOptions()
                    later.runAfter = .seconds(3600)
                    let queued = try await pool.submit(CSquare(), 2, options: later)
                    running.cancel()
                    queued.cancel()
                    await #expect(throws: PoolError.cancelled) { try await running.value }
                    await #expect(throws: PoolError.cancelled) { try await queued.value }
                    #expect(try await eventually { worker.statistics.stoppedRunning == 1 })
                    // The worker goes on.
                    #expect(try await pool.apply(CSquare(), 5) == 25)
                    // Cancelling the awaiting task cancels the queued one too.
                    let waiter = Task { try await pool.apply(CSquare(), 7, options: later) }
                    try await Task.sleep(for: .milliseconds(200))
                    waiter.cancel()
                    await #expect(throws: PoolError.cancelled) { try await waiter.value }
                    #expect(log.lines.count == 1)
                }
            }
        }

        @Test("a task that always traps fails after its attempts with the crash report; the poison rule")
        func alwaysTrapping() async throws {
            let configuration = try await TestDatabase.configuration("trap")
            defer { Task { await TestDatabase.drop(configuration) } }
            try await withWorker(configuration) { (_: ClusterWorker) async throws in
                try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                    var two = ClusterTaskOptions()
                    two.maxAttempts = 2
                    let future = try await pool.submit(AlwaysTrap(), 1, options: two)
                    do {
                        _ = try await future.value
                        Issue.record("a trapping task succeeded")
                    } catch PoolError.workerLost(let loss) {
                        #expect(loss.signal != nil)
                        #expect(loss.crashReport != nil)
                        #expect(loss.crashingFunction?.contains("AlwaysTrap") == true)
                    }
                    #expect(
                        try await TestDatabase.query(
                            "SELECT attempt, workers_killed FROM \(configuration.schema).tasks WHERE id = \(future.id)"
                        )
                            == ["2|2"])
                    // Ten attempts allowed, but the local pool's poison rule (3 workers killed) ends it.
                    var ten = ClusterTaskOptions()
                    ten.maxAttempts = 10
                    let poison = try await pool.submit(AlwaysTrap(), 2, options: ten)
                    await #expect(throws: PoolError.self) { try await poison.value }
                    #expect(
                        try await TestDatabase.query(
                            "SELECT attempt FROM \(configuration.schema).tasks WHERE id = \(poison.id)") == [
                                "3"
                            ])
                    #expect(try await pool.apply(CSquare(), 4) == 16)
                }
            }
        }

        @Test("a corrupt payload row fails that task with undecodablePayload; the worker goes on")
        func corruptPayload() async throws {
            let configuration = try await TestDatabase.configuration("corrupt")
            defer { Task { await TestDatabase.drop(configuration) } }
            try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                var later = ClusterTaskOptions()
                later.runAfter = .seconds(3600)
                let future = try await pool.submit(CSquare(), 3, options: later)
                #expect(
                    try await TestDatabase.psql(
                        "UPDATE \(configuration.schema).tasks SET input = '\\xdeadbeefdeadbeef', run_after = now() WHERE id = \(future.id)"
                    ) == 0)
                try await withWorker(configuration) { (_: ClusterWorker) async throws in
                    await #expect {
                        try await future.value
                    } throws: { error in
                        guard case ClusterError.undecodablePayload(let task, let name, _) = error else {
                            return false
                        }
                        return task == future.id.rawValue && name == clusterTaskName(of: CSquare.self)
                    }
                    #expect(try await pool.apply(CSquare(), 6) == 36)
                }
                // Not retried: undecodable is final.
                #expect(
                    try await TestDatabase.query(
                        "SELECT attempt FROM \(configuration.schema).tasks WHERE id = \(future.id)")
                        == ["1"])
            }
        }

        @Test("the producer gone: a later reader in another pool gets the results by id")
        func producerGone() async throws {
            let configuration = try await TestDatabase.configuration("gone")
            defer { Task { await TestDatabase.drop(configuration) } }
            let ids = try await withClusterPool(configuration: configuration) {
                (pool: ClusterPool) async throws in
                var ids: [ClusterTaskID] = []
                for x in 0..<5 { ids.append(try await pool.submit(CSquare(), x).id) }
                return ids
            }
            try await withWorker(configuration) { (_: ClusterWorker) async throws in
                try await withClusterPool(configuration: configuration) {
                    (reader: ClusterPool) async throws in
                    for (x, id) in ids.enumerated() {
                        #expect(try await reader.result(of: id, as: CSquare.self).value == x * x)
                    }
                    await #expect(throws: ClusterError.noSuchTask(99_999_999)) {
                        try await reader.result(of: ClusterTaskID(99_999_999), as: CSquare.self)
                    }
                }
            }
        }

        @Test("two workers never run the same attempt")
        func twoWorkers() async throws {
            let configuration = try await TestDatabase.configuration("two")
            defer { Task { await TestDatabase.drop(configuration) } }
            let log = RunLog("two")
            defer { log.remove() }
            let count = 300
            let (firstStats, secondStats) = try await withWorker(configuration) {
                (first: ClusterWorker) async throws in
                try await withWorker(configuration) { (second: ClusterWorker) async throws in
                    try await withClusterPool(configuration: configuration) {
                        (pool: ClusterPool) async throws in
                        // One task per item: the claims and completions are what is counted.
                        let results = try await pool.map(
                            LoggedNap(log: log.path, milliseconds: 2), over: 0..<count, chunkSize: 1)
                        #expect(results.count == count)
                    }
                    return (first.statistics, second.statistics)
                }
            }
            let inputs = log.lines.map(\.input)
            #expect(inputs.count == count)
            #expect(Set(inputs) == Set(0..<count))
            #expect(firstStats.claimed + secondStats.claimed == count)
            #expect(firstStats.refused + secondStats.refused == 0)
            #expect(
                try await TestDatabase.query(
                    "SELECT count(*) FROM \(configuration.schema).tasks WHERE state = 'succeeded' AND attempt = 1"
                )
                    == ["\(count)"])
        }
    }
}
