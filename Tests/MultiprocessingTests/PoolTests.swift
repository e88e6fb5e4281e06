import Synchronization
import Testing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("ProcessPool")
struct PoolTests {
    @Test("apply, submit, map with every chunking, empty input")
    func basics() async throws {
        try await withProcessPool(workers: 2) { (pool: ProcessPool) async throws in
            #expect(try await pool.apply(Square(), 7) == 49)
            let future = try pool.submit(Offset(by: 100), 1)
            #expect(try await future.value == 101)
            #expect(future.isDone)
            let expected = (0..<1000).map { $0 * $0 }
            #expect(try await pool.map(Square(), over: 0..<1000) == expected)
            #expect(try await pool.map(Square(), over: 0..<1000, chunkSize: 1) == expected)
            #expect(try await pool.map(Square(), over: 0..<1000, chunkSize: 333) == expected)
            #expect(try await pool.map(Square(), over: [Int]()) == [])
            #expect(pool.automaticChunkSize(100_000) == 12_500)
        }
    }

    @Test(
        "a worker SIGKILLed mid-map fails only its item; the pool goes on",
        arguments: [StartMethod.spawn, .forkserver])
    func workerKilled(method: StartMethod) async throws {
        var options = PoolOptions()
        options.startMethod = method
        try await withProcessPool(workers: 2, options: options) { (pool: ProcessPool) async throws in
            let start = ContinuousClock.now
            let results = try await pool.mapResults(KillOn(victim: 3), over: 0..<8, chunkSize: 1)
            // A hang detector (the map must not wait for the lost item forever), not a timing.
            #expect(ContinuousClock.now - start < .seconds(60))
            for (i, result) in results.enumerated() where i != 3 { #expect(try result.get() == i * 10) }
            guard case .failure(PoolError.workerLost(let loss)) = results[3] else {
                Issue.record("item 3 should have lost its worker: \(results[3])")
                return
            }
            #expect(loss.task == "#3")
            #expect(loss.signal == .kill)
            #expect(try await pool.apply(Square(), 9) == 81)
            #expect(!pool.workerPIDs.contains(loss.pid))
            #expect(await ProcessProbe.waitGone(loss.pid))
        }
    }

    @Test("map throws the failing item's error")
    func mapThrows() async throws {
        try await withProcessPool(workers: 2) { (pool: ProcessPool) async throws in
            await #expect(throws: PoolError.self) {
                try await pool.map(KillOn(victim: 2), over: 0..<5, chunkSize: 1)
            }
            #expect(try await pool.apply(Square(), 3) == 9)
        }
    }

    @Test("a trapping task reports the signal and the worker's stderr")
    func trap() async throws {
        try await withProcessPool(workers: 1) { (pool: ProcessPool) async throws in
            do {
                _ = try await pool.apply(TrapOn(victim: 5), 5)
                Issue.record("a trap returned")
            } catch PoolError.workerLost(let loss) {
                #expect(loss.signal == .illegalInstruction || loss.signal == .trap)
                #expect(loss.standardErrorTail.contains { $0.contains("refusing input 5") })
                #expect(loss.task == "5")
            }
            #expect(try await pool.apply(TrapOn(victim: 5), 4) == 4)
        }
    }

    @Test("a task past its time-out is stopped; the next runs on a new worker")
    func timeout() async throws {
        var options = PoolOptions()
        options.taskTimeout = .milliseconds(300)
        options.terminationGrace = .milliseconds(200)
        try await withProcessPool(workers: 1, options: options) { (pool: ProcessPool) async throws in
            let first = try await pool.apply(Nap(), 0)
            let start = ContinuousClock.now
            await #expect {
                _ = try await pool.apply(Nap(), 30)
            } throws: { error in
                guard case PoolError.timedOut(_, let after, let pid) = error else { return false }
                return after == .milliseconds(300) && pid == first
            }
            #expect(ContinuousClock.now - start < .seconds(60))
            let second = try await pool.apply(Nap(), 0)
            #expect(second != first)
            #expect(await ProcessProbe.waitGone(first))
        }
    }

    @Test("cancelling the awaiting task stops the running work and replaces its worker")
    func cancellation() async throws {
        try await withProcessPool(workers: 1) { (pool: ProcessPool) async throws in
            let first = try await pool.apply(WorkerPID(), 0)
            let started = try SharedValue(0)
            let waiter = Task { try await pool.apply(SignallingNap(started: started), 30) }
            // Cancel once it runs (under load, dispatch can take a while).
            while started.load() == 0 { try await Task.sleep(for: .milliseconds(5)) }
            waiter.cancel()
            await #expect(throws: PoolError.cancelled) { try await waiter.value }
            #expect(await ProcessProbe.waitGone(first))
            let next = try await pool.apply(WorkerPID(), 0)
            #expect(next != first)
            // A queued task that is cancelled never runs.
            let slow = try pool.submit(Nap(), 0.5)
            let queued = try pool.submit(Square(), 4)
            queued.cancel()
            await #expect(throws: PoolError.cancelled) { try await queued.value }
            _ = try await slow.value
        }
    }

    @Test("max tasks per worker recycles workers")
    func recycling() async throws {
        var options = PoolOptions()
        options.maxTasksPerWorker = 2
        try await withProcessPool(workers: 1, options: options) { (pool: ProcessPool) async throws in
            var pids: [Int32] = []
            for i in 0..<6 { pids.append(try await pool.apply(WorkerPID(), i)) }
            #expect(pids[0] == pids[1] && pids[2] == pids[3] && pids[4] == pids[5])
            #expect(Set(pids).count == 3)
        }
    }

    @Test("a task that blows the memory limit fails; the pool goes on")
    func memoryLimit() async throws {
        var options = PoolOptions()
        options.memoryLimit = 150 << 20
        try await withProcessPool(workers: 1, options: options) { (pool: ProcessPool) async throws in
            #expect(try await pool.apply(Hog(), 10) == 10)
            await #expect {
                _ = try await pool.apply(Hog(), 400)
            } throws: { error in
                guard case PoolError.memoryLimitExceeded(_, let resident, let limit, _) = error else {
                    return false
                }
                return resident > limit && limit == 150 << 20
            }
            #expect(try await pool.apply(Hog(), 10) == 10)
        }
    }

    @Test("the initializer runs once in each worker")
    func initializer() async throws {
        let path = "/tmp/mp-init-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { unlink(path) }
        var options = PoolOptions()
        options.initializer = try PoolInitializer(RecordStart(path: path))
        let pids = try await withProcessPool(workers: 2, options: options) {
            (pool: ProcessPool) async throws in
            try await pool.map(Nap(), over: Array(repeating: 0.05, count: 8), chunkSize: 1)
        }
        let lines = (FileSystem.readText(path) ?? "").split(separator: "\n").compactMap { Int32($0) }
        #expect(lines.count == 2)
        #expect(Set(lines).count == 2)
        #expect(Set(pids).isSubset(of: Set(lines)))
    }

    @Test("a failing initializer fails the work instead of looping")
    func failingInitializer() async throws {
        var options = PoolOptions()
        options.initializer = try PoolInitializer(FailingInitializer())
        let pool = ProcessPool(workers: 1, options: options)
        await #expect {
            _ = try await pool.apply(Square(), 2)
        } throws: { error in
            guard case PoolError.initializerFailed(let why) = error else { return false }
            return why.contains("no database")
        }
        await pool.terminate()
    }

    @Test("submit after close is an error")
    func submitAfterClose() async throws {
        let pool = ProcessPool(workers: 1)
        #expect(try await pool.apply(Square(), 2) == 4)
        pool.close()
        #expect(throws: PoolError.self) { _ = try pool.submit(Square(), 3) }
        await pool.join()
        #expect(pool.workerPIDs.isEmpty)
    }

    @Test("errors come back typed: the same Codable value, or a RemoteError")
    func errors() async throws {
        try await withProcessPool(workers: 2) { (pool: ProcessPool) async throws in
            await #expect(throws: FixtureError.badInput("odd 3", line: 3)) {
                try await pool.apply(OddThrower(), 3)
            }
            let results = try await pool.mapResults(OddThrower(), over: 0..<6, chunkSize: 3)
            for (i, result) in results.enumerated() {
                if i % 2 == 0 {
                    #expect(try result.get() == i)
                } else {
                    #expect(throws: FixtureError.badInput("odd \(i)", line: i)) { try result.get() }
                }
            }
            do {
                _ = try await pool.apply(PlainFailure(), 1)
            } catch let error as RemoteError {
                #expect(error.errorDescription == "plain failure with a custom description")
            }
        }
    }

    @Test("maps running at once with the same function keep their results apart")
    func concurrentMaps() async throws {
        try await withProcessPool(workers: 2) { (pool: ProcessPool) async throws in
            async let a = pool.map(Square(), over: 0..<3000, chunkSize: 1)
            async let b = pool.map(Square(), over: 3000..<6000, chunkSize: 1)
            async let c = pool.map(Offset(by: 7), over: 0..<3000, chunkSize: 2)
            async let d = pool.apply(Square(), 12)
            let (ra, rb, rc, rd) = try await (a, b, c, d)
            #expect(ra == (0..<3000).map { $0 * $0 })
            #expect(rb == (3000..<6000).map { $0 * $0 })
            #expect(rc == (0..<3000).map { $0 + 7 })
            #expect(rd == 144)
        }
    }

    @Test("errors thrown by some items of many small chunks stay with their items")
    func scatteredErrors() async throws {
        try await withProcessPool(workers: 2) { (pool: ProcessPool) async throws in
            for chunkSize in [1, 7] {
                let results = try await pool.mapResults(OddThrower(), over: 0..<500, chunkSize: chunkSize)
                #expect(results.count == 500)
                for (i, result) in results.enumerated() {
                    if i % 2 == 0 {
                        #expect(try result.get() == i)
                    } else {
                        #expect(throws: FixtureError.badInput("odd \(i)", line: i)) { try result.get() }
                    }
                }
            }
        }
    }

    @Test("an input that cannot be encoded fails its own chunk only")
    func unencodableInput() async throws {
        try await withProcessPool(workers: 1) { (pool: ProcessPool) async throws in
            let inputs = (0..<20).map { Picky($0, refuse: $0 == 5) }
            let results = try await pool.mapResults(PickyDouble(), over: inputs, chunkSize: 1)
            for (i, result) in results.enumerated() where i != 5 { #expect(try result.get() == i * 2) }
            #expect(throws: ProcessError.self) { try results[5].get() }
            await #expect(throws: ProcessError.self) {
                try await pool.map(PickyDouble(), over: inputs, chunkSize: 4)
            }
            #expect(throws: ProcessError.self) { _ = try pool.submit(PickyDouble(), Picky(1, refuse: true)) }
            #expect(try await pool.map(PickyDouble(), over: [Picky(4)]) == [8])
        }
    }

    @Test("a task that kills every worker it touches is stopped by the poison rule")
    func poison() async throws {
        var options = PoolOptions()
        options.retries = 10
        options.maxWorkersKilledPerTask = 2
        try await withProcessPool(workers: 1, options: options) { (pool: ProcessPool) async throws in
            do {
                _ = try await pool.apply(KillOn(victim: 1), 1)
                Issue.record("the poison task returned")
            } catch PoolError.workerLost(let loss) {
                #expect(loss.workersKilled == 2)
            }
            #expect(try await pool.apply(KillOn(victim: 1), 2) == 20)
        }
    }

    @Test("streaming maps consume a huge lazy input in bounded memory")
    func streaming() async throws {
        try await withProcessPool(workers: 2) { (pool: ProcessPool) async throws in
            let inputs = CountingInputs(limit: 10_000_000)
            var seen = 0
            for try await value in pool.orderedMap(Square(), over: inputs, chunkSize: 10) {
                #expect(value == seen * seen)
                seen += 1
                if seen == 2000 { break }
            }
            // At most the window (4 chunks per worker) beyond what was consumed.
            #expect(inputs.pulled <= 2000 + 8 * 10 + 10)
            var unordered: Set<Int> = []
            for try await value in pool.unorderedMap(Offset(by: 1), over: 0..<500, chunkSize: 7) {
                unordered.insert(value)
            }
            #expect(unordered == Set(1...500))
        }
    }

    @Test(
        "cancelling the task iterating a streaming map ends it while every worker is busy",
        .timeLimit(.minutes(1)), arguments: [false, true])
    func cancelStreamingMap(ordered: Bool) async throws {
        let started = try SharedValue(0)
        try await withProcessPool(workers: 1) { (pool: ProcessPool) async throws in
            // Items of ten minutes: the loop may end only by giving up on them.
            let naps = [600.0, 600.0]
            let function = SignallingNap(started: started)
            let loop = Task {
                var yielded = 0
                if ordered {
                    for try await _ in pool.orderedMap(function, over: naps) { yielded += 1 }
                } else {
                    for try await _ in pool.unorderedMap(function, over: naps) { yielded += 1 }
                }
                return yielded
            }
            while started.load() == 0 { try await Task.sleep(for: .milliseconds(5)) }
            loop.cancel()
            await #expect(throws: PoolError.cancelled) { try await loop.value }
            // The worker that ran the item was stopped, and the pool still works.
            #expect(try await pool.apply(Square(), 3) == 9)
        }
    }

    @Test("functions of two arguments: apply and a map over pairs (starmap)")
    func twoArguments() async throws {
        try await withProcessPool(workers: 2) { (pool: ProcessPool) async throws in
            #expect(try await pool.apply(Multiply(), 3, "ab") == "ababab")
            let out = try await pool.map(Multiply(), over: zip([1, 2, 0], ["x", "y", "z"]))
            #expect(out == ["x", "yy", ""])
        }
    }

    @Test("progress is reported while a map runs")
    func progress() async throws {
        let seen = ProgressLog()
        try await withProcessPool(workers: 2) { (pool: ProcessPool) async throws in
            _ = try await pool.map(Square(), over: 0..<100, chunkSize: 10) { seen.add($0) }
        }
        let all = seen.all
        #expect(all.count == 10)
        #expect(all.last?.completed == 100 && all.last?.total == 100)
    }

    @Test("no worker is left behind")
    func noLeftovers() async throws {
        var pids: [Int32] = []
        try await withProcessPool(workers: 2) { (pool: ProcessPool) async throws in
            _ = try await pool.map(Square(), over: 0..<10)
            pids = pool.workerPIDs
        }
        #expect(pids.count == 2)
        for pid in pids { #expect(await ProcessProbe.waitGone(pid)) }
        let pool = ProcessPool(workers: 2)
        _ = try await pool.apply(Square(), 1)
        let more = pool.workerPIDs
        await pool.terminate()
        for pid in more { #expect(await ProcessProbe.waitGone(pid)) }
    }
}

final class ProgressLog: Sendable {
    private let log = Mutex<[PoolProgress]>([])
    func add(_ progress: PoolProgress) { log.withLock { $0.append(progress) } }
    var all: [PoolProgress] { log.withLock { $0.sorted { $0.completed < $1.completed } } }
}
