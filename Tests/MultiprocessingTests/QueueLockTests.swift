import CMultiprocessing
import Dispatch
import Synchronization
import Testing

@testable import Multiprocessing

@Suite("Queues: async forms waiting behind the queue's lock")
struct QueueLockTests {
    /// Holds `queue`'s internal lock (as another process decoding a large item would) while
    /// `body` runs; a Dispatch thread lets it go after `valve` seconds if `body` has not, so that
    /// a regression fails instead of hanging. Returns whether the valve had to fire.
    private func holdingLock(
        of core: QueueCore, valve seconds: Int = 20,
        _ body: (_ release: @Sendable () -> Void) async throws -> Void
    ) async throws -> Bool {
        let lock = LockWord(core.memory.baseAddress + QueueLayout.lock)
        #expect(lock.lock(until: .never) == .acquired)
        let released = Atomic<Bool>(false)
        let valveFired = Atomic<Bool>(false)
        let release: @Sendable () -> Void = {
            if !released.exchange(true, ordering: .acquiringAndReleasing) { lock.unlock() }
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + .seconds(seconds)) {
            if !released.load(ordering: .acquiring) { valveFired.store(true, ordering: .releasing) }
            release()
        }
        try await body(release)
        release()
        return valveFired.load(ordering: .acquiring)
    }

    @Test("async gets waiting behind the queue's lock hold no cooperative thread")
    func getsBehindTheLock() async throws {
        let queue = try ProcessQueue<Int>()
        let valveFired = try await holdingLock(of: queue.core) { release in
            let received = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 { group.addTask { try await queue.get(timeout: .seconds(60)) } }
                // Runs only if the getters left the cooperative threads free.
                try await Task.sleep(for: .milliseconds(50))
                release()
                for item in 0..<8 { try await queue.put(item) }
                var received: [Int] = []
                for try await item in group { received.append(item) }
                return received
            }
            #expect(received.sorted() == Array(0..<8))
        }
        #expect(valveFired == false)
    }

    @Test("async puts waiting behind the queue's lock hold no cooperative thread")
    func putsBehindTheLock() async throws {
        let queue = try ProcessQueue<Int>()
        let valveFired = try await holdingLock(of: queue.core) { release in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for item in 0..<8 { group.addTask { try await queue.put(item, timeout: .seconds(60)) } }
                try await Task.sleep(for: .milliseconds(50))
                release()
                try await group.waitForAll()
            }
        }
        #expect(valveFired == false)
        var received: [Int] = []
        for _ in 0..<8 { received.append(try queue.getNowait()) }
        #expect(received.sorted() == Array(0..<8))
    }
}
