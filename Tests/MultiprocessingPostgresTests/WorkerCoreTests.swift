import Multiprocessing
import Testing

@testable import MultiprocessingPostgres

/// The worker's in-memory bookkeeping, without a database.
@Suite("ClusterWorker's bookkeeping")
struct WorkerCoreTests {
    func task(_ id: Int64, attempt: Int32) -> ClaimedTask {
        ClaimedTask(id: id, name: "t", function: [], input: [], attempt: attempt, priority: 0, timeout: nil)
    }

    func failure(_ id: Int64, attempt: Int32) -> AttemptOutcome {
        AttemptOutcome(
            id: id, attempt: attempt, output: nil, error: ErrorEnvelope(PoolError.closed), errorText: "x",
            final: false)
    }

    @Test("a new attempt claimed before the last one's outcome was written is not dropped")
    func newerAttemptSupersedes() async throws {
        var options = ClusterWorkerOptions()
        options.concurrency = 1
        let core = WorkerCore(options: options)
        core.add([task(1, attempt: 1)])
        let first = try #require(await core.nextToStart())
        #expect(first.map(\.attempt) == [1])
        core.finished(first[0], failure(1, attempt: 1))
        let outcomes = core.takeOutcomes(limit: 10)
        // The failed attempt went back to the queue and this worker claimed it again before the
        // answer to the write came back.
        core.add([task(1, attempt: 2)])
        core.recorded(outcomes, accepted: [1])
        #expect(core.state.withLock { $0.ready } == [1])
        try #require(core.heldIDs == [1])
        let second = try #require(await core.nextToStart())
        #expect(second.map(\.attempt) == [2])
    }

    @Test("claims come in batches: none while more than half the room is taken and a slot is busy")
    func claimRoom() async throws {
        var options = ClusterWorkerOptions()
        options.concurrency = 1
        options.maximumHeld = 8
        let core = WorkerCore(options: options)
        #expect(core.claimRoom() == 8)
        core.add((1...5).map { task($0, attempt: 1) })
        _ = await core.nextToStart()
        #expect(core.claimRoom() == 0)  // 3 free of 8, one running, four ready.
        core.beginDraining()
        #expect(core.claimRoom() == 0)
        #expect(core.takeReady().sorted() == [2, 3, 4, 5])
    }

    @Test("by default a worker claims few ahead, many once tasks prove quick, few again after a slow one")
    func adaptiveClaims() async throws {
        var options = ClusterWorkerOptions()
        options.concurrency = 2
        let core = WorkerCore(options: options)
        #expect(core.claimRoom() == 8)  // Four per slot, at least 8.
        core.add((1...8).map { task($0, attempt: 1) })
        // Quick in a row (set here: a loaded machine can stretch a test's "quick" attempt past
        // the millisecond; the counting itself is `runAhead`'s): 64 per slot, at least 256, less
        // what it holds.
        core.state.withLock { $0.quickStreak = WorkerCore.quickStreakToRunAhead }
        let held = core.heldIDs.count
        #expect(core.claimRoom() == 256 - held)
        // A slow attempt: back to the small limit (nothing more until room frees up).
        core.add((100...199).map { task($0, attempt: 1) })
        let started = try #require(await core.nextToStart())
        try await Task.sleep(for: .milliseconds(5))
        core.finished(started[0], failure(started[0].id, attempt: 1))
        #expect(core.claimRoom() == 0)

        // A limit set by the user holds throughout.
        options.maximumHeld = 10
        #expect(WorkerCore(options: options).quickHeldLimit == 10)
    }

    @Test("outcomes wait for company while work remains; due when the batch is full or the worker idle")
    func completionBatching() async throws {
        var options = ClusterWorkerOptions()
        options.concurrency = 1
        options.maximumHeld = 12  // Batches of 3.
        let core = WorkerCore(options: options)
        core.add((1...5).map { task($0, attempt: 1) })
        for id in Int64(1)...5 {
            let started = try #require(await core.nextToStart())
            #expect(started.map(\.id) == [id])
            core.finished(started[0], failure(id, attempt: 1))
            switch id {
            case 3:
                #expect(core.flushDue)  // A full batch.
                #expect(core.takeOutcomes(limit: 10).map(\.id) == [1, 2, 3])
            case 5:
                #expect(core.flushDue)  // Nothing left to run.
                #expect(core.takeOutcomes(limit: 10).map(\.id) == [4, 5])
            default:
                #expect(!core.flushDue)  // Tasks still to run: wait for company.
            }
        }
        #expect(!core.flushDue)
    }

    @Test("quick tasks run ahead of free slots in the local pool; slow ones and those with a time-out do not")
    func runAhead() async throws {
        var options = ClusterWorkerOptions()
        options.concurrency = 1
        options.maximumHeld = 100
        let core = WorkerCore(options: options)
        core.add((1...50).map { task($0, attempt: 1) })
        for _ in 0..<WorkerCore.quickStreakToRunAhead {
            let started = try #require(await core.nextToStart())
            #expect(started.count == 1)
            core.finished(started[0], failure(started[0].id, attempt: 1))
        }
        // Quick in a row: one for the slot and `runAhead` more.
        let ahead = try #require(await core.nextToStart())
        #expect(ahead.count == 1 + core.runAhead)
        // One slow attempt ends running ahead.
        for task in ahead.dropLast() { core.finished(task, failure(task.id, attempt: 1)) }
        try await Task.sleep(for: .milliseconds(5))
        core.finished(ahead.last!, failure(ahead.last!.id, attempt: 1))
        #expect(try #require(await core.nextToStart()).count == 1)

        // A task with a time-out waits for a free slot even while tasks are quick.
        let timed = WorkerCore(options: options)
        var withTimeout = task(200, attempt: 1)
        withTimeout.timeout = .seconds(5)
        timed.add((101...108).map { task($0, attempt: 1) } + [task(201, attempt: 1), withTimeout])
        for _ in 0..<WorkerCore.quickStreakToRunAhead {
            let started = try #require(await timed.nextToStart())
            timed.finished(started[0], failure(started[0].id, attempt: 1))
        }
        #expect(try #require(await timed.nextToStart()).map(\.id) == [201])
    }
}
