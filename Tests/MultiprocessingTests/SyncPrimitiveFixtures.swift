import Multiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// Tasks for the tests of the reentrant lock, semaphore, event, condition and barrier (internal,
// at file scope, so a child can find them by name).

/// The `index`th machine word of `memory`, as an atomic integer.
func sharedCounter(_ memory: SharedMemory, _ index: Int = 0) -> UnsafeMutablePointer<Atomic<Int>> {
    (memory.baseAddress + index * 8).assumingMemoryBound(to: Atomic<Int>.self)
}

/// What a ``SyncError`` was, as a string a child can return.
func syncOutcome(_ body: () async throws -> Void) async -> String {
    do {
        try await body()
        return "ok"
    } catch let error as SyncError {
        return "\(error)"
    } catch {
        return "other: \(error)"
    }
}

/// Increments a plain counter `count` times, each under the reentrant lock taken twice.
struct ReentrantIncrementer: ProcessTask {
    var lock: ProcessRLock
    var memory: SharedMemory
    var count: Int
    var async: Bool
    func run() async throws {
        let counter = memory.baseAddress.assumingMemoryBound(to: Int.self)
        for _ in 0..<count {
            if async {
                try await lock.withLock {
                    try await lock.withLock { counter.pointee += 1 }
                }
            } else {
                lock.withLockBlocking {
                    lock.withLockBlocking { counter.pointee += 1 }
                }
            }
        }
    }
}

/// Takes the reentrant lock three times, raises a flag, and sleeps holding it (to be killed).
struct RLockDeepHolder: ProcessTask {
    var lock: ProcessRLock
    var flag: SharedMemory
    func run() async throws {
        for _ in 0..<3 { try lock.acquireBlocking() }
        flag.baseAddress.storeBytes(of: 1, as: Int.self)
        while true { sleep(10) }
    }
}

/// Tries to release a reentrant lock someone else holds; returns what happened.
struct RLockStranger: ProcessTask {
    var lock: ProcessRLock
    func run() async throws -> String {
        await syncOutcome { try lock.release() }
    }
}

/// Releases the semaphore `count` times: one at a time, then the rest in one call.
struct SemaphoreReleaser: ProcessTask {
    var semaphore: ProcessSemaphore
    var count: Int
    func run() async throws {
        for _ in 0..<count / 2 {
            try semaphore.release()
        }
        try semaphore.release(count - count / 2)
    }
}

/// `rounds` times: takes a unit, counts itself inside (word 0) and the most ever inside
/// (word 1), gives the unit back; counts the rounds done (word 2).
struct SemaphoreWorker: ProcessTask {
    var semaphore: ProcessSemaphore
    var memory: SharedMemory
    var rounds: Int
    var async: Bool
    func run() async throws {
        let inside = sharedCounter(memory, 0)
        let most = sharedCounter(memory, 1)
        let done = sharedCounter(memory, 2)
        for _ in 0..<rounds {
            if async {
                try await semaphore.acquire(timeout: .seconds(60))
            } else {
                try semaphore.acquireBlocking(timeout: .seconds(60))
            }
            let now = inside.pointee.add(1, ordering: .sequentiallyConsistent).newValue
            _ = most.pointee.max(now, ordering: .sequentiallyConsistent)
            usleep(200)
            inside.pointee.subtract(1, ordering: .sequentiallyConsistent)
            done.pointee.add(1, ordering: .relaxed)
            try semaphore.release()
        }
    }
}

/// Waits for `event`, then sets `reply`; returns what the wait returned.
struct EventWaiter: ProcessTask {
    var event: ProcessEvent
    var reply: ProcessEvent
    var async: Bool
    func run() async throws -> Bool {
        let seen =
            async ? try await event.wait(timeout: .seconds(30)) : event.waitBlocking(timeout: .seconds(30))
        reply.set()
        return seen
    }
}

/// Under the condition's lock: waits until word 0 is 42, sets it to 43 and notifies back.
struct ConditionPeer: ProcessTask {
    var condition: ProcessCondition
    var memory: SharedMemory
    var async: Bool
    func run() async throws -> Bool {
        let value = memory.baseAddress.assumingMemoryBound(to: Int.self)
        if async {
            return try await condition.withLock {
                guard try await condition.wait(for: { value.pointee == 42 }, timeout: .seconds(30)) else {
                    return false
                }
                value.pointee = 43
                try condition.notifyAll()
                return true
            }
        }
        try condition.acquireBlocking()
        defer { try? condition.release() }
        guard try condition.waitBlocking(for: { value.pointee == 42 }, timeout: .seconds(30)) else {
            return false
        }
        value.pointee = 43
        try condition.notify()
        return true
    }
}

/// One party of a barrier for `generations` rounds. Before each wait it counts its arrival in
/// word `1 + generation`; after it, it checks that every party had arrived. Its handle's action
/// counts in word 0. Returns its arrival indices.
struct BarrierParty: ProcessTask {
    var barrier: ProcessBarrier
    var memory: SharedMemory
    var generations: Int
    var async: Bool
    func run() async throws -> [Int] {
        let memory = memory
        let barrier = ProcessBarrier(sharing: barrier) {
            sharedCounter(memory, 0).pointee.add(1, ordering: .relaxed)
        }
        var indices: [Int] = []
        for generation in 0..<generations {
            sharedCounter(memory, 1 + generation).pointee.add(1, ordering: .sequentiallyConsistent)
            let index =
                async
                ? try await barrier.wait(timeout: .seconds(60))
                : try barrier.waitBlocking(timeout: .seconds(60))
            let arrived = sharedCounter(memory, 1 + generation).pointee.load(
                ordering: .sequentiallyConsistent)
            guard arrived == barrier.parties else {
                throw BarrierLeak(generation: generation, arrived: arrived)
            }
            indices.append(index)
        }
        return indices
    }
}

struct BarrierLeak: Error, Codable {
    var generation: Int
    var arrived: Int
}

/// Waits on the barrier once (forever, or up to `timeoutSeconds`); returns what happened.
struct BarrierWaiter: ProcessTask {
    var barrier: ProcessBarrier
    var timeoutSeconds: Int?
    var async: Bool
    func run() async throws -> String {
        let timeout = timeoutSeconds.map { Duration.seconds($0) }
        return await syncOutcome {
            if async {
                try await barrier.wait(timeout: timeout)
            } else {
                try barrier.waitBlocking(timeout: timeout)
            }
        }
    }
}
