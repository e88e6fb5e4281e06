import Dispatch
import Synchronization
import Testing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// The pool under deliberate abuse: workers killed at random, while starting, by their own
/// items, or turned hostile. Every item must be accounted for exactly once and no innocent
/// item may fail.
@Suite("Chaos: pool", .serialized)
struct ChaosPoolTests {
    @Test(
        "only the items that kill their worker fail: none of the others is blamed",
        arguments: [false, true])
    func exactBlame(trap: Bool) async throws {
        try await withProcessPool(workers: 2) { (pool: ProcessPool) async throws in
            for _ in 0..<3 {
                let results = try await pool.mapResults(
                    KillOnAny(victims: [17, 123], trap: trap), over: 0..<200, chunkSize: 1)
                try Self.expectOnlyVictimsFailed(results, victims: [17, 123])
            }
        }
    }

    @Test("a crash fails the item that was running, not its chunk", arguments: [100, nil] as [Int?])
    func itemNotChunk(chunkSize: Int?) async throws {
        try await withProcessPool(workers: 2) { (pool: ProcessPool) async throws in
            let victims: Set<Int> = [250, 731, 999]
            let results =
                if let chunkSize {
                    try await pool.mapResults(
                        KillOnAny(victims: victims), over: 0..<1000, chunkSize: chunkSize)
                } else {
                    try await pool.mapResults(KillOnAny(victims: victims), over: 0..<1000)
                }
            try Self.expectOnlyVictimsFailed(results, victims: victims)
            // Streaming maps chunk too.
            var streamed: [Int: Result<Int, any Error>] = [:]
            var index = 0
            for try await value in pool.orderedMap(KillOnAny(victims: [], trap: false), over: 0..<300) {
                streamed[index] = .success(value)
                index += 1
            }
            #expect(streamed.count == 300)
        }
    }

    @Test("with retries, each victim kills exactly retries + 1 workers and nothing else fails")
    func retriesPerItem() async throws {
        var options = PoolOptions()
        options.retries = 2
        try await withProcessPool(workers: 2, options: options) { (pool: ProcessPool) async throws in
            let results = try await pool.mapResults(
                KillOnAny(victims: [5, 77]), over: 0..<100, chunkSize: 25)
            try Self.expectOnlyVictimsFailed(results, victims: [5, 77])
            for victim in [5, 77] {
                guard case .failure(PoolError.workerLost(let loss)) = results[victim] else { continue }
                #expect(loss.workersKilled == 3)
            }
        }
    }

    @Test("a time-out fails the slow item of a chunk; its neighbours keep their answers")
    func timeoutPerItem() async throws {
        var options = PoolOptions()
        options.taskTimeout = .milliseconds(400)
        options.terminationGrace = .milliseconds(100)
        try await withProcessPool(workers: 2, options: options) { (pool: ProcessPool) async throws in
            let results = try await pool.mapResults(NapOn(naps: [5: 5_000_000]), over: 0..<20, chunkSize: 10)
            for (i, result) in results.enumerated() where i != 5 { #expect(try result.get() == i * 3) }
            guard case .failure(PoolError.timedOut(let task, _, _)) = results[5] else {
                Issue.record("item 5 should have timed out: \(results[5])")
                return
            }
            #expect(task == "#5")
        }
    }

    @Test(
        "workers SIGKILLed while they start (in or before the initializer) are replaced; no work fails",
        arguments: [true, false])
    func killedWhileStarting(withInitializer: Bool) async throws {
        var options = PoolOptions()
        if withInitializer {
            options.initializer = try PoolInitializer(SlowInitializer(microseconds: 300_000))
        } else {
            // Without an initializer a worker is ready at once, so a kill may also land while it
            // runs an item: that item may be retried (the issue's case: failing with
            // `initializerFailed` even with retries).
            options.retries = 10
            options.maxWorkersKilledPerTask = 11
        }
        let pool = ProcessPool(workers: 2, options: options)
        // Kill the first workers as soon as they appear: before they are ready.
        let killed = Mutex<Set<Int32>>([])
        let finished = Atomic<Bool>(false)
        let killer = Task {
            let deadline = ContinuousClock.now + .seconds(20)
            while killed.withLock({ $0.count }) < 6, ContinuousClock.now < deadline,
                !finished.load(ordering: .relaxed)
            {
                for pid in pool.workerPIDs where !killed.withLock({ $0.contains(pid) }) {
                    kill(pid, SIGKILL)
                    killed.withLock { _ = $0.insert(pid) }
                }
                try? await Task.sleep(for: .milliseconds(2))
            }
        }
        let future = try pool.submit(Square(), 12)
        let results = try await pool.map(Square(), over: 0..<500, chunkSize: 1)
        #expect(results == (0..<500).map { $0 * $0 })
        #expect(try await future.value == 144)
        finished.store(true, ordering: .relaxed)
        await killer.value
        #expect(killed.withLock { $0.count } >= 1)
        pool.close()
        await pool.join()
        for pid in killed.withLock({ $0 }) { #expect(await ProcessProbe.waitGone(pid)) }
    }

    @Test("an initializer that crashes every time fails the work after a bounded number of attempts")
    func crashingInitializer() async throws {
        var options = PoolOptions()
        options.initializer = try PoolInitializer(TrappingInitializer())
        let pool = ProcessPool(workers: 2, options: options)
        await #expect(throws: PoolError.self) {
            _ = try await pool.map(Square(), over: 0..<50, chunkSize: 1)
        }
        await pool.terminate()
        await pool.join()
    }

    @Test("a worker that writes garbage into its job socket is killed; its job fails typed; the pool goes on")
    func hostileWorker() async throws {
        try await withProcessPool(workers: 2) { (pool: ProcessPool) async throws in
            for round in 0..<3 {
                let pidsBefore = pool.workerPIDs
                do {
                    let value = try await pool.apply(GarbageOn(victim: 3), 3)
                    Issue.record("round \(round): a hostile worker's answer was accepted: \(value)")
                } catch let error as PoolError {
                    switch error {
                    case .protocolError, .workerLost: break
                    default: Issue.record("round \(round): unexpected \(error)")
                    }
                }
                #expect(try await pool.apply(GarbageOn(victim: 3), 4) == 12)
                for pid in pidsBefore where !pool.workerPIDs.contains(pid) {
                    #expect(await ProcessProbe.waitGone(pid))
                }
            }
            #expect(try await pool.map(Square(), over: 0..<100) == (0..<100).map { $0 * $0 })
        }
    }

    @Test(
        "random SIGKILLs during 10,000-item maps: every item answered exactly once, none failed",
        arguments: [1, nil] as [Int?])
    func randomKills(chunkSize: Int?) async throws {
        var options = PoolOptions()
        options.retries = 1_000
        options.maxWorkersKilledPerTask = 1_000
        let pool = ProcessPool(workers: 2, options: options)
        let done = Atomic<Bool>(false)
        let kills = Atomic<Int>(0)
        // On a thread of its own: a busy cooperative pool must not slow the kills down.
        let killerDone = DispatchSemaphore(value: 0)
        detachedThread {
            var generator = SystemRandomNumberGenerator()
            // Only workers seen for 200 ms or more: a worker killed while it starts counts
            // towards the pool's "50 failed starts in a row" rule (its own test), and on a
            // loaded machine a start can outlast the pause between kills.
            var firstSeen: [Int32: ContinuousClock.Instant] = [:]
            while !done.load(ordering: .relaxed) {
                usleep(UInt32.random(in: 5_000...40_000, using: &generator))
                let now = ContinuousClock.now
                let pids = pool.workerPIDs
                firstSeen = firstSeen.filter { pids.contains($0.key) }
                for pid in pids where firstSeen[pid] == nil { firstSeen[pid] = now }
                let started = pids.filter { now - firstSeen[$0]! >= .milliseconds(200) }
                if let pid = started.randomElement(using: &generator), kill(pid, SIGKILL) == 0 {
                    kills.add(1, ordering: .relaxed)
                }
            }
            killerDone.signal()
        }
        // Maps one after another until the workers have been killed often enough (a slow
        // machine still gets every kill), each checked item by item.
        let count = 10_000
        let wantedKills = 60
        let start = ContinuousClock.now
        var maps = 0
        var failures = 0
        while kills.load(ordering: .relaxed) < wantedKills, ContinuousClock.now - start < .seconds(60) {
            let results =
                if let chunkSize {
                    try await pool.mapResults(Churn(), over: 0..<count, chunkSize: chunkSize)
                } else {
                    try await pool.mapResults(Churn(), over: 0..<count)
                }
            maps += 1
            #expect(results.count == count)
            for (i, result) in results.enumerated() {
                switch result {
                case .success(let value):
                    if value != i * 3 {
                        failures += 1
                        Issue.record("item \(i) answered \(value)")
                    }
                case .failure(let error):
                    failures += 1
                    if failures < 5 { Issue.record("item \(i) failed: \(error)") }
                }
            }
        }
        done.store(true, ordering: .relaxed)
        await withCheckedContinuation { continuation in
            detachedThread {
                killerDone.wait()
                continuation.resume()
            }
        }
        #expect(kills.load(ordering: .relaxed) >= wantedKills)
        #expect(failures == 0)
        print(
            "chaos: pool: \(kills.load(ordering: .relaxed)) workers SIGKILLed during \(maps) maps of \(count) items "
                + "(chunk size \(chunkSize.map(String.init) ?? "automatic")) in \(ContinuousClock.now - start); "
                + "\(maps * count) items answered once each, \(failures) failed")
        pool.close()
        await pool.join()
    }

    @Test("at the descriptor limit a pool's work fails typed; the same pool works once descriptors are free")
    func descriptorLimit() async throws {
        let child = try ChildProcess(PoolAtDescriptorLimit())
        try await child.start()
        let report = try await child.value
        #expect(report == ["before: 9", "starved: workerStartFailed, errno \(EMFILE)", "after: 25"])
    }

    /// Every victim failed with `workerLost` naming it; every other item has its answer.
    static func expectOnlyVictimsFailed(_ results: [Result<Int, any Error>], victims: Set<Int>) throws {
        var innocent: [Int] = []
        for (i, result) in results.enumerated() {
            if victims.contains(i) {
                guard case .failure(let error) = result, case PoolError.workerLost(let loss) = error else {
                    Issue.record("victim \(i) did not fail with workerLost: \(result)")
                    continue
                }
                #expect(loss.task == "#\(i)")
            } else if case .failure(let error) = result {
                innocent.append(i)
                if innocent.count < 4 { Issue.record("innocent item \(i) failed: \(error)") }
            } else {
                #expect(try result.get() == i * 3)
            }
        }
        #expect(innocent.isEmpty, "\(innocent.count) innocent items failed")
    }
}
