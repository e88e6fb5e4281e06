import Synchronization
import Testing

@testable import Multiprocessing

/// A batch that records how its jobs ended, for the queue's tests (no worker involved).
private final class RecordingBatch: JobBatch, @unchecked Sendable {
    let failures = Mutex<[Int: String]>([:])

    init(core: PoolCore) {
        super.init(core: core, function: InstalledFunction(id: 1, typeName: "none", payload: []))
    }

    override func fail(_ index: Int, _ error: any Error) {
        failures.withLock { $0[index] = "\(error)" }
    }
}

/// The pool's job queue and its core, without workers: order, requeue at the front,
/// cancellation, closing, breaking, terminating, draining.
@Suite("Pool: job queue")
struct PoolJobQueueTests {
    private func jobs(_ count: Int, core: PoolCore) -> (RecordingBatch, [PoolJob]) {
        let batch = RecordingBatch(core: core)
        let first = core.newJobIDs(count)
        return (batch, (0..<count).map { PoolJob(id: first + UInt64($0), batch: batch, index: $0) })
    }

    @Test("first in, first out; jobs put back go first again, in their order; compaction keeps order")
    func order() {
        let core = PoolCore(workers: 1, options: PoolOptions())
        var queue = JobQueue()
        let (_, all) = jobs(10_000, core: core)
        queue.append(contentsOf: all)
        var taken: [Int] = []
        for _ in 0..<6_000 { taken.append(queue.popFirst()!.index) }  // Past the compaction point.
        #expect(taken == Array(0..<6_000))
        queue.prepend([all[5_998], all[5_999]])
        #expect(queue.count == 4_002)
        #expect(queue.popFirst()?.index == 5_998)
        #expect(queue.popFirst()?.index == 5_999)
        // More put back than were ever taken from this storage: still in order.
        var fresh = JobQueue()
        fresh.append(all[10])
        fresh.prepend([all[1], all[2], all[3]])
        #expect((0..<4).compactMap { _ in fresh.popFirst()?.index } == [1, 2, 3, 10])
        #expect(fresh.isEmpty && fresh.popFirst() == nil)
        #expect(queue.removeAll().count == 4_000)
        #expect(queue.isEmpty)
    }

    @Test("take skips cancelled jobs and never counts them twice; drain ends when all jobs ended")
    func takeAndDrain() async throws {
        let core = PoolCore(workers: 1, options: PoolOptions())
        let (batch, all) = jobs(5, core: core)
        try core.enqueue(all)
        #expect(all[1].cancel() == nil)  // Queued: cancelled at once, nobody to stop.
        let taken = core.take(max: 3)
        #expect(taken.map(\.index) == [0, 2, 3])
        #expect(batch.failures.withLock { $0 } == [1: "\(PoolError.cancelled)"])
        // Taken jobs die with their worker: they go back first.
        core.requeue([taken[1], taken[2]])
        #expect(core.take(max: 10).map(\.index) == [2, 3, 4])
        for job in [all[0], all[2], all[3], all[4]] { job.fail(PoolError.resultTimedOut) }
        await core.drain()  // Returns: every job reached its end once.
        #expect(batch.failures.withLock { $0.count } == 5)
    }

    @Test("a closed pool refuses new work but lets drivers finish the queue; a broken one fails it")
    func closeAndBreak() async throws {
        let core = PoolCore(workers: 1, options: PoolOptions())
        let (_, first) = jobs(2, core: core)
        try core.enqueue(first)
        core.close()
        let (_, late) = jobs(1, core: core)
        #expect(throws: PoolError.closed) { try core.enqueue(late) }
        #expect(await core.waitForWork())  // Work is still queued.
        #expect(core.take(max: 10).count == 2)
        #expect(await core.waitForWork() == false)  // Closed and empty: the driver ends.

        let broken = PoolCore(workers: 1, options: PoolOptions())
        let (batch, queued) = jobs(3, core: broken)
        try broken.enqueue(queued)
        broken.breakPool("boom")
        #expect(batch.failures.withLock { $0.count } == 3)
        #expect(throws: PoolError.initializerFailed("boom")) { try broken.enqueue(jobs(1, core: broken).1) }
        await broken.drain()
    }

    @Test("terminate cancels what is queued and what is put back afterwards; failQueued keeps the pool open")
    func terminateAndFailQueued() async throws {
        let core = PoolCore(workers: 1, options: PoolOptions())
        let (batch, all) = jobs(4, core: core)
        try core.enqueue(all)
        let running = core.take(max: 1)
        core.failQueued(PoolError.workerStartFailed("no descriptors", cause: nil))
        #expect(batch.failures.withLock { $0.count } == 3)
        let (_, more) = jobs(1, core: core)
        try core.enqueue(more)  // Still open.
        core.terminate()
        core.requeue(running)  // Its worker died after the pool was terminated.
        #expect(batch.failures.withLock { $0[0] } == "\(PoolError.cancelled)")
        #expect(core.take(max: 10).isEmpty)
        await core.drain()
    }
}
