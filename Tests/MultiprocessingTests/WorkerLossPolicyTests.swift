import Testing

@testable import Multiprocessing

/// The pool's failure rules, without killing anything: whom a worker's death is charged to,
/// and when the charged item fails.
@Suite("Pool: worker loss policy")
struct WorkerLossPolicyTests {
    typealias Policy = WorkerLossPolicy

    @Test("a death before the worker was ready is a startup failure, unless the pool stopped it")
    func startup() {
        for stage in [WorkerLedger.Stage.starting, .initializing] {
            #expect(
                Policy.blame(
                    stage: stage, wasReady: false, stoppedByPool: false, runningItem: nil,
                    firstUnanswered: 0, itemCounts: [1, 1])
                    == .startup(initializing: stage == .initializing))
        }
        // Stopped by the pool (a time-out while starting): the first job is charged.
        #expect(
            Policy.blame(
                stage: .starting, wasReady: false, stoppedByPool: true, runningItem: nil,
                firstUnanswered: 0, itemCounts: [3]) == .job(index: 0, item: nil))
        // Its ledger says idle or busy: it was ready, even if the ready frame never came.
        #expect(
            Policy.blame(
                stage: .idle, wasReady: false, stoppedByPool: false, runningItem: nil,
                firstUnanswered: 0, itemCounts: [1]) == .nobody)
    }

    @Test("the running item is found across the unanswered jobs, counted from the first")
    func runningItem() {
        let counts = [4, 1, 10]
        let expected: [(UInt64, Policy.Blame)] = [
            (100, .job(index: 0, item: 0)),
            (103, .job(index: 0, item: 3)),
            (104, .job(index: 1, item: 0)),
            (105, .job(index: 2, item: 0)),
            (114, .job(index: 2, item: 9)),
            (115, .nobody),  // Never sent: nobody is charged.
        ]
        for (running, blame) in expected {
            #expect(
                Policy.blame(
                    stage: .busy, wasReady: true, stoppedByPool: false, runningItem: running,
                    firstUnanswered: 100, itemCounts: counts) == blame, "item \(running)")
        }
    }

    @Test("an item already answered is never charged; a death outside items charges the frame's first job")
    func outsideItems() {
        // The ledger still names an item whose answer arrived: the worker was past it.
        #expect(
            Policy.blame(
                stage: .idle, wasReady: true, stoppedByPool: false, runningItem: 99,
                firstUnanswered: 100, itemCounts: [2]) == .nobody)
        // Busy (reading a frame, sending answers) outside any item: the first job as a whole.
        #expect(
            Policy.blame(
                stage: .busy, wasReady: true, stoppedByPool: false, runningItem: nil,
                firstUnanswered: 100, itemCounts: [2, 2]) == .job(index: 0, item: nil))
        // Idle: nobody, even with jobs on their way to it.
        #expect(
            Policy.blame(
                stage: .idle, wasReady: true, stoppedByPool: false, runningItem: nil,
                firstUnanswered: 100, itemCounts: [2, 2]) == .nobody)
        // No job at all.
        #expect(
            Policy.blame(
                stage: .busy, wasReady: true, stoppedByPool: true, runningItem: nil,
                firstUnanswered: 0, itemCounts: []) == .nobody)
    }

    @Test("an item fails once it has killed more workers than retries allow, or the kill limit")
    func killLimits() {
        var options = PoolOptions()
        options.retries = 0
        options.maxWorkersKilledPerTask = 3
        #expect(Policy.failsAfterKill(kills: 1, options: options))
        options.retries = 2
        #expect(!Policy.failsAfterKill(kills: 1, options: options))
        #expect(!Policy.failsAfterKill(kills: 2, options: options))
        #expect(Policy.failsAfterKill(kills: 3, options: options))
        options.retries = 10
        #expect(Policy.failsAfterKill(kills: 3, options: options), "the kill limit wins over retries")
    }

    @Test("only an initializer that fails counts against it; a worker killed while starting is replaced")
    func startupFailures() {
        #expect(Policy.startupFailure(initializing: true, status: .exited(1)) == .initializer)
        #expect(
            Policy.startupFailure(initializing: true, status: .signaled(.illegalInstruction)) == .initializer)
        #expect(Policy.startupFailure(initializing: true, status: .signaled(.kill)) == .lost)
        #expect(Policy.startupFailure(initializing: false, status: .exited(1)) == .lost)
        #expect(!Policy.givesUp(after: .initializer, inARow: PoolCore.initializerAttempts - 1))
        #expect(Policy.givesUp(after: .initializer, inARow: PoolCore.initializerAttempts))
        #expect(!Policy.givesUp(after: .lost, inARow: PoolCore.initializerAttempts))
        #expect(Policy.givesUp(after: .lost, inARow: PoolCore.startupAttempts))
    }
}
