import Multiprocessing
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("ProcessLock")
struct ProcessLockTests {
    @Test("exact total under contention from three processes and the parent")
    func exactTotals() async throws {
        let lock = try ProcessLock()
        let memory = try SharedMemory(size: 8)
        let perProcess = 20_000
        let children = try [
            ChildProcess(LockedIncrementer(lock: lock, memory: memory, count: perProcess)),
            ChildProcess(LockedIncrementer(lock: lock, memory: memory, count: perProcess)),
        ]
        let asyncChild = try ChildProcess(
            AsyncLockedIncrementer(lock: lock, memory: memory, count: perProcess / 4),
            startMethod: .forkserver)
        for child in children { try await child.start() }
        try await asyncChild.start()
        let counter = memory.baseAddress.assumingMemoryBound(to: Int.self)
        try await onThread {
            let counter = memory.baseAddress.assumingMemoryBound(to: Int.self)
            for _ in 0..<perProcess { lock.withLockBlocking { counter.pointee += 1 } }
        }
        for child in children { try await child.value }
        try await asyncChild.value
        #expect(counter.pointee == perProcess * 3 + perProcess / 4)
        #expect(lock.isLocked == false)
    }

    @Test("a .fork child's contended async wait ends: its wait threads are its own")
    func contendedWaitInForkChild() async throws {
        let lock = try ProcessLock()
        // A contended wait here leaves an idle wait thread, which a forked child does not have.
        _ = try lock.acquireBlocking()
        let warm = Task { try await lock.acquire() }
        try await Task.sleep(for: .milliseconds(30))
        try lock.release()
        _ = try await warm.value
        try lock.release()
        try await Task.sleep(for: .milliseconds(50))  // The thread is back in the idle list.
        let child = try ChildProcess(ContendedAsyncWaiter(lock: lock), startMethod: .fork)
        try await child.start()
        let status = try await child.join(timeout: .seconds(20))
        if status == nil {
            child.kill()
            _ = try await child.join()
        }
        #expect(status == .exited(0))
    }

    @Test("timeouts, try, release errors")
    func timeoutsAndMisuse() async throws {
        let lock = try ProcessLock()
        #expect(lock.tryAcquire() == .acquired)
        #expect(lock.tryAcquire() == nil)
        #expect(lock.holder == getpid())
        #expect(throws: SyncError.timedOut) { try lock.acquireBlocking(timeout: .milliseconds(20)) }
        await #expect(throws: SyncError.timedOut) { try await lock.acquire(timeout: .milliseconds(20)) }
        try lock.release()
        #expect(throws: SyncError.notLocked) { try lock.release() }
        #expect(try lock.acquireBlocking(timeout: .zero) == .acquired)
        try lock.release()
    }

    @Test("an async waiter is woken by a release and cancelling it acquires nothing")
    func asyncWaitAndCancel() async throws {
        let lock = try ProcessLock()
        try lock.acquireBlocking()
        let waiter = Task { try await lock.acquire() }
        try await Task.sleep(for: .milliseconds(30))
        try lock.release()
        #expect(try await waiter.value == .acquired)
        // Still held by the waiter's acquisition: a second waiter blocks until cancelled.
        let cancelled = Task { try await lock.acquire() }
        try await Task.sleep(for: .milliseconds(30))
        cancelled.cancel()
        await #expect(throws: SyncError.cancelled) { try await cancelled.value }
        try lock.release()
        #expect(lock.isLocked == false)
    }

    @Test("a holder SIGKILLed holding the lock: the next acquirer recovers it", arguments: [false, true])
    func ownerDeath(asyncWaiter: Bool) async throws {
        let lock = try ProcessLock()
        let flag = try SharedMemory(size: 8)
        let holder = try ChildProcess(LockHolder(lock: lock, flag: flag))
        try await holder.start()
        try await waitForFlag(flag)
        #expect(lock.holder == holder.pid)
        let waiter = Task {
            asyncWaiter
                ? try await lock.acquire(timeout: .seconds(20))
                : try await onThread { try lock.acquireBlocking(timeout: .seconds(20)) }
        }
        try await Task.sleep(for: .milliseconds(20))
        holder.kill()
        _ = try await holder.join()
        let acquisition = try await waiter.value
        #expect(acquisition == .ownerDied(pid: holder.pid!))
        #expect(lock.ownerDeaths == 1)
        try lock.release()
        #expect(try lock.acquireBlocking(timeout: .seconds(1)) == .acquired)
        try lock.release()
    }

    @Test("withLockBlocking takes over a dead holder's lock and counts the death")
    func withLockAfterDeath() async throws {
        let lock = try ProcessLock()
        let flag = try SharedMemory(size: 8)
        let holder = try ChildProcess(LockHolder(lock: lock, flag: flag))
        try await holder.start()
        try await waitForFlag(flag)
        holder.kill()
        _ = try await holder.join()
        try await onThread { lock.withLockBlocking {} }
        #expect(lock.ownerDeaths == 1)
        #expect(lock.isLocked == false)
    }

    @Test("tryAcquire takes over a dead holder's lock")
    func tryAfterDeath() async throws {
        let lock = try ProcessLock()
        let flag = try SharedMemory(size: 8)
        let holder = try ChildProcess(LockHolder(lock: lock, flag: flag))
        try await holder.start()
        try await waitForFlag(flag)
        #expect(lock.tryAcquire() == nil)
        holder.kill()
        _ = try await holder.join()
        #expect(lock.tryAcquire() == .ownerDied(pid: holder.pid!))
        try lock.release()
    }

    @Test(
        "a waiter that arrives after the holder died and was reaped acquires at once, not after a liveness slice",
        arguments: DeadHolderLock.allCases)
    func arrivalAfterReapedDeath(kind: DeadHolderLock) async throws {
        // In a child of its own, so that no other test's waiters touch its slice counter.
        let probe = try ChildProcess(ArrivalAfterDeathProbe(kind: kind, tries: 3))
        try await probe.start()
        let slept = try await probe.value
        #expect(slept == [0, 0, 0], "liveness slices slept per acquisition: \(slept)")
    }
}

enum DeadHolderLock: String, Codable, CaseIterable, Sendable {
    case lockBlocking, rlockBlocking
}

/// Takes a `ProcessLock` or a `ProcessRLock`, raises the flag, and waits to be killed.
struct DeadHolder: ProcessTask {
    var kind: DeadHolderLock
    var lock: ProcessLock
    var rlock: ProcessRLock
    var flag: SharedMemory
    func run() async throws {
        switch kind {
        case .lockBlocking: try lock.acquireBlocking()
        case .rlockBlocking: try rlock.acquireBlocking()
        }
        flag.baseAddress.storeBytes(of: 1, as: Int.self)
        while true { sleep(10) }
    }
}
