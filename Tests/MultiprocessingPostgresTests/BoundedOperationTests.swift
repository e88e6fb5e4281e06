import Synchronization
import Testing

@testable import MultiprocessingPostgres

/// The guard against a database request that never ends (seen after a server restart).
@Suite("Bounded database operations")
struct BoundedOperationTests {
    @Test("a try that never answers is given up after the limit, and counts as transient")
    func neverAnswers() async throws {
        let start = ContinuousClock.now
        await #expect {
            try await ClusterDatabase.bounded(by: .milliseconds(200), "waiting for nothing") {
                // Like the leaked request: suspended for ever, deaf to cancellation.
                await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }
            }
        } throws: { error in
            error is ClusterDatabase.OperationTimedOut && ClusterDatabase.isTransient(error)
        }
        #expect(ContinuousClock.now - start < .seconds(30))  // Not a hang (loose: a busy suite).
    }

    @Test("a try that answers in time returns its value; its error passes through")
    func answers() async throws {
        #expect(try await ClusterDatabase.bounded(by: .seconds(30), "adding") { 2 + 2 } == 4)
        struct Refused: Error {}
        await #expect(throws: Refused.self) {
            try await ClusterDatabase.bounded(by: .seconds(30), "refusing") { throw Refused() }
        }
    }

    @Test("cancelling the caller ends the wait at once, even when the try ignores it")
    func cancelled() async throws {
        let started = Atomic<Bool>(false)
        let caller = Task {
            try await ClusterDatabase.bounded(by: .seconds(3600), "waiting for nothing") {
                started.store(true, ordering: .relaxed)
                await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }
            }
        }
        while !started.load(ordering: .relaxed) { try await Task.sleep(for: .milliseconds(5)) }
        caller.cancel()
        await #expect(throws: CancellationError.self) { try await caller.value }
    }

    @Test("many operations at once share one watcher; one that never answers among them is given up")
    func sharedWatcher() async throws {
        let sums = try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<200 {
                group.addTask { try await ClusterDatabase.bounded(by: .seconds(30), "adding") { i + i } }
            }
            return try await group.reduce(0, +)
        }
        #expect(sums == 2 * (0..<200).reduce(0, +))
        // Among answering ones, one that never answers is still given up.
        await #expect(throws: ClusterDatabase.OperationTimedOut.self) {
            try await ClusterDatabase.bounded(by: .milliseconds(100), "waiting for nothing") {
                await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }
            }
        }
    }

    @Test("the watcher fires what is due, and stops once nothing is in flight")
    func watcherStops() async throws {
        // A watcher of its own: the shared one also serves the cluster tests running meanwhile.
        let deadlines = OperationDeadlines()
        let fired = Atomic<Int>(0)
        let kept = deadlines.add(deadline: .now + .seconds(3600)) { fired.add(100, ordering: .relaxed) }
        _ = deadlines.add(deadline: .now + .milliseconds(50)) { fired.add(1, ordering: .relaxed) }
        #expect(deadlines.isWatching)
        var waited = 0
        while fired.load(ordering: .relaxed) == 0 && waited < 600 {
            try await Task.sleep(for: .milliseconds(100))
            waited += 1
        }
        #expect(fired.load(ordering: .relaxed) == 1)
        deadlines.remove(kept)
        waited = 0
        while deadlines.isWatching && waited < 600 {
            try await Task.sleep(for: .milliseconds(100))
            waited += 1
        }
        #expect(!deadlines.isWatching)
        #expect(fired.load(ordering: .relaxed) == 1)
    }
}
