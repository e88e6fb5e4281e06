import Dispatch
import Multiprocessing
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Polls `condition` until it holds (tests only).
private func waitUntil(seconds: Double = 30, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while !condition() {
        if ContinuousClock.now > deadline { throw FlagTimeout() }
        try await Task.sleep(for: .milliseconds(2))
    }
}

@Suite("ProcessRLock")
struct ProcessRLockTests {
    @Test("reentrancy: every form nests, the last release frees it")
    func reentrancy() async throws {
        let lock = try ProcessRLock()
        #expect(try lock.acquireBlocking() == .acquired)
        #expect(try lock.acquireBlocking(timeout: .zero) == .acquired)
        #expect(lock.tryAcquire() == .acquired)
        #expect(try await lock.acquire(timeout: .milliseconds(10)) == .acquired)
        #expect(lock.recursionDepth == 4)
        #expect(lock.isHeldByCurrentCaller)
        #expect(lock.holder == getpid())
        for _ in 0..<3 { try lock.release() }
        #expect(lock.isLocked)
        try lock.release()
        #expect(lock.isLocked == false)
        #expect(lock.recursionDepth == 0)
        #expect(throws: SyncError.notLocked) { try lock.release() }
        #expect(lock.withLockBlocking { lock.withLockBlocking { lock.recursionDepth } } == 2)
        #expect(try await lock.withLock { try await lock.withLock { lock.recursionDepth } } == 2)
        #expect(lock.isLocked == false)
        // Outside any task the holder is the thread.
        let depth = try await onThread {
            try lock.acquireBlocking()
            try lock.acquireBlocking(timeout: .seconds(1))
            let depth = lock.recursionDepth
            try lock.release()
            try lock.release()
            return depth
        }
        #expect(depth == 2)
        #expect(lock.isLocked == false)
    }

    @Test("another task, thread or process can neither release nor take it; timeouts")
    func ownership() async throws {
        let lock = try ProcessRLock()
        try lock.acquireBlocking()
        #expect(
            await Task.detached { await syncOutcome { try lock.release() } }.value == "\(SyncError.notOwner)")
        #expect(await Task.detached { lock.tryAcquire() }.value == nil)
        let blocking = await Task.detached {
            await syncOutcome { try lock.acquireBlocking(timeout: .milliseconds(30)) }
        }.value
        #expect(blocking == "\(SyncError.timedOut)")
        let async = await Task.detached {
            await syncOutcome { try await lock.acquire(timeout: .milliseconds(30)) }
        }.value
        #expect(async == "\(SyncError.timedOut)")
        let thread = try await onThread { () -> String in
            do {
                try lock.release()
                return "released"
            } catch {
                return "\(error)"
            }
        }
        #expect(thread == "\(SyncError.notOwner)")
        let stranger = try ChildProcess(RLockStranger(lock: lock))
        try await stranger.start()
        #expect(try await stranger.value == "\(SyncError.notOwner)")
        #expect(lock.recursionDepth == 1)
        try lock.release()
        #expect(lock.isLocked == false)
    }

    @Test("exact total from two children (spawn, forkserver) and the parent, nested holds")
    func exactTotals() async throws {
        let lock = try ProcessRLock()
        let memory = try SharedMemory(size: 8)
        let count = 3000
        let children = try [
            ChildProcess(ReentrantIncrementer(lock: lock, memory: memory, count: count, async: false)),
            ChildProcess(
                ReentrantIncrementer(lock: lock, memory: memory, count: count, async: true),
                startMethod: .forkserver),
        ]
        for child in children { try await child.start() }
        let counter = memory.baseAddress.assumingMemoryBound(to: Int.self)
        for _ in 0..<count {
            lock.withLockBlocking { lock.withLockBlocking { counter.pointee += 1 } }
        }
        for child in children { try await child.value }
        #expect(counter.pointee == count * 3)
        #expect(lock.isLocked == false)
    }

    @Test(
        "a holder SIGKILLed three levels deep: the next acquirer recovers it at depth one",
        arguments: [false, true])
    func ownerDeath(asyncWaiter: Bool) async throws {
        let lock = try ProcessRLock()
        let flag = try SharedMemory(size: 8)
        let holder = try ChildProcess(RLockDeepHolder(lock: lock, flag: flag))
        try await holder.start()
        try await waitForFlag(flag)
        #expect(lock.holder == holder.pid)
        #expect(lock.tryAcquire() == nil)
        @Sendable func acquireAndRelease() throws -> (LockAcquisition, Int, Bool) {
            let acquisition = try lock.acquireBlocking(timeout: .seconds(30))
            let depth = lock.recursionDepth
            try lock.release()
            return (acquisition, depth, lock.isLocked)
        }
        let waiter = Task { () throws -> (LockAcquisition, Int, Bool) in
            guard asyncWaiter else { return try await onThread(acquireAndRelease) }
            let acquisition = try await lock.acquire(timeout: .seconds(30))
            let depth = lock.recursionDepth
            try lock.release()
            return (acquisition, depth, lock.isLocked)
        }
        try await Task.sleep(for: .milliseconds(20))
        holder.kill()
        _ = try await holder.join()
        let (acquisition, depth, stillLocked) = try await waiter.value
        #expect(acquisition == .ownerDied(pid: holder.pid!))
        #expect(depth == 1)
        #expect(stillLocked == false)
        #expect(lock.ownerDeaths == 1)
    }

    @Test("tryAcquire takes over a dead holder's lock, which then works as usual")
    func tryAfterDeath() async throws {
        let lock = try ProcessRLock()
        let flag = try SharedMemory(size: 8)
        let holder = try ChildProcess(RLockDeepHolder(lock: lock, flag: flag), startMethod: .forkserver)
        try await holder.start()
        try await waitForFlag(flag)
        holder.kill()
        _ = try await holder.join()
        #expect(lock.tryAcquire() == .ownerDied(pid: holder.pid!))
        #expect(lock.recursionDepth == 1)
        #expect(try lock.acquireBlocking() == .acquired)
        try lock.release()
        try lock.release()
        #expect(lock.isLocked == false)
    }

    @Test("cancelling an async acquire takes nothing")
    func cancel() async throws {
        let lock = try ProcessRLock()
        try lock.acquireBlocking()
        let waiter = Task { try await lock.acquire() }
        try await Task.sleep(for: .milliseconds(30))
        waiter.cancel()
        await #expect(throws: SyncError.cancelled) { try await waiter.value }
        #expect(lock.recursionDepth == 1)
        try lock.release()
        #expect(lock.isLocked == false)
    }
}

@Suite("ProcessSemaphore")
struct ProcessSemaphoreTests {
    @Test("counts, try, timeouts, a waiter woken by a release")
    func basics() async throws {
        let semaphore = try ProcessSemaphore(value: 2)
        #expect(semaphore.value == 2)
        #expect(semaphore.limit == nil)
        #expect(semaphore.tryAcquire())
        try semaphore.acquireBlocking(timeout: .zero)
        #expect(semaphore.tryAcquire() == false)
        #expect(throws: SyncError.timedOut) { try semaphore.acquireBlocking(timeout: .milliseconds(20)) }
        await #expect(throws: SyncError.timedOut) { try await semaphore.acquire(timeout: .milliseconds(20)) }
        try semaphore.release(3)
        #expect(semaphore.value == 3)
        try await semaphore.acquire()
        try await semaphore.acquire(timeout: .seconds(1))
        try semaphore.acquireBlocking()
        #expect(semaphore.value == 0)
        let waiter = Task { try await semaphore.acquire(timeout: .seconds(30)) }
        let blockingWaiter = Task {
            try await onThread { try semaphore.acquireBlocking(timeout: .seconds(30)) }
        }
        try await Task.sleep(for: .milliseconds(20))
        try semaphore.release(2)
        try await waiter.value
        try await blockingWaiter.value
        #expect(semaphore.value == 0)
    }

    @Test("withUnit gives the unit back")
    func withUnit() async throws {
        let semaphore = try ProcessSemaphore(value: 1)
        #expect(try await semaphore.withUnit { semaphore.value } == 0)
        #expect(semaphore.withUnitBlocking { semaphore.value } == 0)
        #expect(semaphore.value == 1)
    }

    @Test("a bounded semaphore refuses to count past its limit")
    func bounded() throws {
        let semaphore = try ProcessSemaphore(value: 2, limit: 2)
        #expect(semaphore.limit == 2)
        #expect(throws: SyncError.overReleased(limit: 2)) { try semaphore.release() }
        #expect(semaphore.value == 2)
        try semaphore.acquireBlocking()
        try semaphore.acquireBlocking()
        #expect(throws: SyncError.overReleased(limit: 2)) { try semaphore.release(3) }
        #expect(semaphore.value == 0)
        try semaphore.release(2)
        #expect(semaphore.value == 2)
        let wider = try ProcessSemaphore(value: 0, limit: 3)
        try wider.release(3)
        #expect(throws: SyncError.overReleased(limit: 3)) { try wider.release() }
        #expect(wider.value == 3)
    }

    @Test("units released by two children are each taken exactly once")
    func accounting() async throws {
        let semaphore = try ProcessSemaphore(value: 0)
        let perChild = 400
        let children = try [
            ChildProcess(SemaphoreReleaser(semaphore: semaphore, count: perChild)),
            ChildProcess(SemaphoreReleaser(semaphore: semaphore, count: perChild), startMethod: .forkserver),
        ]
        for child in children { try await child.start() }
        for index in 0..<perChild * 2 {
            if index % 2 == 0 {
                try await semaphore.acquire(timeout: .seconds(30))
            } else {
                try await onThread { try semaphore.acquireBlocking(timeout: .seconds(30)) }
            }
        }
        for child in children { try await child.value }
        #expect(semaphore.value == 0)
        #expect(semaphore.tryAcquire() == false)
    }

    @Test("at most `value` holders at once across three processes, every round accounted for")
    func concurrencyLimit() async throws {
        let semaphore = try ProcessSemaphore(value: 2, limit: 2)
        let memory = try SharedMemory(size: 24)
        let rounds = 100
        let workers = try [
            ChildProcess(SemaphoreWorker(semaphore: semaphore, memory: memory, rounds: rounds, async: false)),
            ChildProcess(SemaphoreWorker(semaphore: semaphore, memory: memory, rounds: rounds, async: true)),
            ChildProcess(
                SemaphoreWorker(semaphore: semaphore, memory: memory, rounds: rounds, async: false),
                startMethod: .forkserver),
        ]
        for worker in workers { try await worker.start() }
        for worker in workers { try await worker.value }
        #expect(sharedCounter(memory, 2).pointee.load(ordering: .sequentiallyConsistent) == rounds * 3)
        let most = sharedCounter(memory, 1).pointee.load(ordering: .sequentiallyConsistent)
        #expect(most >= 1 && most <= 2)
        #expect(sharedCounter(memory, 0).pointee.load(ordering: .sequentiallyConsistent) == 0)
        #expect(semaphore.value == 2)
    }

    @Test("cancelling an async acquire takes no unit")
    func cancel() async throws {
        let semaphore = try ProcessSemaphore(value: 0)
        let waiter = Task { try await semaphore.acquire() }
        try await Task.sleep(for: .milliseconds(30))
        waiter.cancel()
        await #expect(throws: SyncError.cancelled) { try await waiter.value }
        try semaphore.release()
        #expect(semaphore.value == 1)
    }
}

@Suite("ProcessEvent")
struct ProcessEventTests {
    @Test("set, clear, isSet, timeouts")
    func basics() async throws {
        let event = try ProcessEvent()
        #expect(event.isSet == false)
        #expect(event.waitBlocking(timeout: .milliseconds(20)) == false)
        #expect(try await event.wait(timeout: .milliseconds(20)) == false)
        #expect(try await event.wait(timeout: .zero) == false)
        event.set()
        #expect(event.isSet)
        event.set()
        #expect(event.waitBlocking())
        #expect(try await event.wait())
        #expect(event.waitBlocking(timeout: .zero))
        event.clear()
        #expect(event.isSet == false)
        event.clear()
        #expect(event.waitBlocking(timeout: .zero) == false)
    }

    @Test("many async waiters hold no cooperative thread; one set wakes them all")
    func manyWaiters() async throws {
        let event = try ProcessEvent()
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<8 { group.addTask { try await event.wait(timeout: .seconds(30)) } }
            try await Task.sleep(for: .milliseconds(50))
            event.set()
            var results: [Bool] = []
            for try await result in group { results.append(result) }
            return results
        }
        #expect(results == Array(repeating: true, count: 8))
    }

    @Test("a child waiting on the event sees the parent's set", arguments: [false, true])
    func childSeesSet(async: Bool) async throws {
        let event = try ProcessEvent()
        let reply = try ProcessEvent()
        let child = try ChildProcess(
            EventWaiter(event: event, reply: reply, async: async), startMethod: async ? .forkserver : .spawn)
        try await child.start()
        #expect(try await reply.wait(timeout: .milliseconds(100)) == false)
        event.set()
        #expect(try await reply.wait(timeout: .seconds(30)))
        #expect(try await child.value)
    }

    @Test("cancelling an async wait")
    func cancel() async throws {
        let event = try ProcessEvent()
        let waiter = Task { try await event.wait() }
        try await Task.sleep(for: .milliseconds(30))
        waiter.cancel()
        await #expect(throws: SyncError.cancelled) { try await waiter.value }
        #expect(event.isSet == false)
    }
}

@Suite("ProcessCondition")
struct ProcessConditionTests {
    @Test(
        "wait times out holding the lock again; waiting and notifying need the lock",
        arguments: [false, true])
    func basics(plainLock: Bool) async throws {
        let condition = plainLock ? try ProcessCondition(lock: ProcessLock()) : try ProcessCondition()
        #expect(throws: SyncError.notLocked) { try condition.notify() }
        #expect(throws: SyncError.notLocked) { try condition.notifyAll() }
        #expect(throws: SyncError.notLocked) { try condition.waitBlocking(timeout: .milliseconds(1)) }
        await #expect(throws: SyncError.notLocked) { try await condition.wait(timeout: .milliseconds(1)) }
        try condition.acquireBlocking()
        #expect(try condition.waitBlocking(timeout: .milliseconds(20)) == false)
        #expect(try await condition.wait(timeout: .milliseconds(20)) == false)
        #expect(try condition.waitBlocking(for: { false }, timeout: .milliseconds(20)) == false)
        #expect(try await condition.wait(for: { false }, timeout: .milliseconds(20)) == false)
        #expect(try await condition.wait(for: { true }))
        #expect(try condition.waitBlocking(for: { true }))
        try condition.notify()
        try condition.notify(3)
        try condition.notifyAll()
        #expect(condition.tryAcquire() == (plainLock ? nil : .acquired))
        if !plainLock { try condition.release() }
        try condition.release()
        #expect(condition.tryAcquire() == .acquired)
        try condition.release()
    }

    @Test("a wait on a reentrant lock held twice releases both levels and restores them")
    func reentrantWait() async throws {
        let lock = try ProcessRLock()
        let condition = try ProcessCondition(lock: lock)
        let flag = try SharedMemory(size: 8)
        let value = flag.baseAddress.assumingMemoryBound(to: Int.self)
        try lock.acquireBlocking()
        try lock.acquireBlocking()
        let notifier = Task.detached {
            try await lock.withLock {
                flag.baseAddress.storeBytes(of: 1, as: Int.self)
                try condition.notify()
            }
        }
        #expect(try await condition.wait(for: { value.pointee == 1 }, timeout: .seconds(30)))
        #expect(lock.recursionDepth == 2)
        try lock.release()
        try lock.release()
        #expect(lock.isLocked == false)
        try await notifier.value
    }

    @Test("notify wakes waiting tasks; notifyAll wakes them all")
    func notifyCounts() async throws {
        let condition = try ProcessCondition(lock: ProcessLock())
        let memory = try SharedMemory(size: 16)
        let woken = sharedCounter(memory, 0)
        let tickets = sharedCounter(memory, 1)
        let waiters = (0..<4).map { _ in
            Task {
                let woken = sharedCounter(memory, 0)
                let tickets = sharedCounter(memory, 1)
                return try await condition.withLock {
                    // Each waiter waits for a ticket and takes one.
                    let got = try await condition.wait(
                        for: { tickets.pointee.load(ordering: .relaxed) > 0 }, timeout: .seconds(30))
                    if got {
                        tickets.pointee.subtract(1, ordering: .relaxed)
                        woken.pointee.add(1, ordering: .relaxed)
                    }
                    return got
                }
            }
        }
        try await Task.sleep(for: .milliseconds(50))
        try await condition.withLock {
            tickets.pointee.add(1, ordering: .relaxed)
            try condition.notify()
        }
        try await waitUntil { woken.pointee.load(ordering: .relaxed) >= 1 }
        try await condition.withLock {
            tickets.pointee.add(3, ordering: .relaxed)
            try condition.notifyAll()
        }
        for waiter in waiters { #expect(try await waiter.value) }
        #expect(woken.pointee.load(ordering: .relaxed) == 4)
    }

    @Test("a child waits for a value the parent sets and notifies back", arguments: [false, true])
    func crossProcess(async: Bool) async throws {
        let condition = async ? try ProcessCondition() : try ProcessCondition(lock: ProcessLock())
        let memory = try SharedMemory(size: 8)
        let value = memory.baseAddress.assumingMemoryBound(to: Int.self)
        let child = try ChildProcess(
            ConditionPeer(condition: condition, memory: memory, async: async),
            startMethod: async ? .forkserver : .spawn)
        try await child.start()
        try await Task.sleep(for: .milliseconds(20))
        let answered = try await condition.withLock {
            value.pointee = 42
            try condition.notifyAll()
            return try await condition.wait(for: { value.pointee == 43 }, timeout: .seconds(30))
        }
        #expect(answered)
        #expect(try await child.value)
    }

    @Test("a cancelled wait throws with the lock held again")
    func cancel() async throws {
        let condition = try ProcessCondition()
        let waiter = Task { () async throws -> String in
            try await condition.acquire()
            let outcome = await syncOutcome { try await condition.wait() }
            try condition.release()  // throws unless the wait took the lock back
            return outcome
        }
        try await Task.sleep(for: .milliseconds(30))
        waiter.cancel()
        #expect(try await waiter.value == "\(SyncError.cancelled)")
        #expect(condition.tryAcquire() == .acquired)
        try condition.release()
    }
}

@Suite("ProcessBarrier")
struct ProcessBarrierTests {
    @Test("three processes through five generations; one action per generation")
    func generations() async throws {
        let memory = try SharedMemory(size: 64)
        let generations = 5
        let barrier = try ProcessBarrier(parties: 3) {
            sharedCounter(memory, 0).pointee.add(1, ordering: .relaxed)
        }
        let children = try [
            ChildProcess(
                BarrierParty(barrier: barrier, memory: memory, generations: generations, async: false)),
            ChildProcess(
                BarrierParty(barrier: barrier, memory: memory, generations: generations, async: true),
                startMethod: .forkserver),
        ]
        for child in children { try await child.start() }
        var mine: [Int] = []
        for generation in 0..<generations {
            sharedCounter(memory, 1 + generation).pointee.add(1, ordering: .sequentiallyConsistent)
            let index =
                generation % 2 == 0
                ? try await barrier.wait(timeout: .seconds(60))
                : try await onThread { try barrier.waitBlocking(timeout: .seconds(60)) }
            #expect(
                sharedCounter(memory, 1 + generation).pointee.load(ordering: .sequentiallyConsistent) == 3)
            mine.append(index)
        }
        let first = try await children[0].value
        let second = try await children[1].value
        for generation in 0..<generations {
            #expect(Set([mine[generation], first[generation], second[generation]]) == [0, 1, 2])
        }
        #expect(sharedCounter(memory, 0).pointee.load(ordering: .relaxed) == generations)
        #expect(barrier.isBroken == false)
        #expect(barrier.waitingCount == 0)
    }

    @Test("one party: every wait passes at once and runs the action")
    func singleParty() async throws {
        let memory = try SharedMemory(size: 8)
        let barrier = try ProcessBarrier(parties: 1) {
            sharedCounter(memory).pointee.add(1, ordering: .relaxed)
        }
        #expect(try barrier.waitBlocking() == 0)
        #expect(try await barrier.wait() == 0)
        #expect(sharedCounter(memory).pointee.load(ordering: .relaxed) == 2)
    }

    @Test("a wait that times out breaks the barrier for everyone until reset")
    func timeoutBreaks() async throws {
        let barrier = try ProcessBarrier(parties: 3)
        let child = try ChildProcess(BarrierWaiter(barrier: barrier, timeoutSeconds: nil, async: true))
        try await child.start()
        try await waitUntil { barrier.waitingCount == 1 }
        await #expect(throws: SyncError.brokenBarrier) { try await barrier.wait(timeout: .milliseconds(100)) }
        #expect(barrier.isBroken)
        #expect(try await child.value == "\(SyncError.brokenBarrier)")
        #expect(throws: SyncError.brokenBarrier) { try barrier.waitBlocking(timeout: .seconds(5)) }
        barrier.reset()
        #expect(barrier.isBroken == false)
        // The default timeout given at init, here and in a child that got the handle.
        let quick = try ProcessBarrier(parties: 2, timeout: .milliseconds(50))
        #expect(throws: SyncError.brokenBarrier) { try quick.waitBlocking() }
        #expect(quick.isBroken)
        quick.reset()
        let impatient = try ChildProcess(
            BarrierWaiter(barrier: quick, timeoutSeconds: nil, async: false), startMethod: .forkserver)
        try await impatient.start()
        #expect(try await impatient.value == "\(SyncError.brokenBarrier)")
        #expect(quick.isBroken)
    }

    @Test("abort breaks a waiting party; reset mends the barrier", arguments: [false, true])
    func abortAndReset(async: Bool) async throws {
        let barrier = try ProcessBarrier(parties: 2)
        let startMethod: StartMethod = async ? .forkserver : .spawn
        let child = try ChildProcess(
            BarrierWaiter(barrier: barrier, timeoutSeconds: nil, async: async), startMethod: startMethod)
        try await child.start()
        try await waitUntil { barrier.waitingCount == 1 }
        barrier.abort()
        #expect(try await child.value == "\(SyncError.brokenBarrier)")
        #expect(barrier.isBroken)
        #expect(barrier.waitingCount == 0)
        barrier.reset()
        #expect(barrier.isBroken == false)
        let second = try ChildProcess(
            BarrierWaiter(barrier: barrier, timeoutSeconds: 30, async: async), startMethod: startMethod)
        try await second.start()
        let index = try await barrier.wait(timeout: .seconds(30))
        #expect(try await second.value == "ok")
        #expect(index == 0 || index == 1)
    }

    @Test("reset while a party waits: it leaves broken, and the barrier works again")
    func resetWhileWaiting() async throws {
        let barrier = try ProcessBarrier(parties: 2)
        let child = try ChildProcess(BarrierWaiter(barrier: barrier, timeoutSeconds: nil, async: false))
        try await child.start()
        try await waitUntil { barrier.waitingCount == 1 }
        barrier.reset()
        #expect(try await child.value == "\(SyncError.brokenBarrier)")
        #expect(barrier.isBroken == false)
        async let first = barrier.wait(timeout: .seconds(30))
        async let second = barrier.wait(timeout: .seconds(30))
        #expect(Set(try await [first, second]) == [0, 1])
    }

    @Test("an action that throws breaks the barrier; its error reaches the party that ran it")
    func throwingAction() async throws {
        struct Boom: Error {}
        let barrier = try ProcessBarrier(parties: 2) { throw Boom() }
        let child = try ChildProcess(BarrierWaiter(barrier: barrier, timeoutSeconds: 30, async: false))
        try await child.start()
        try await waitUntil { barrier.waitingCount == 1 }
        await #expect(throws: Boom.self) { try await barrier.wait(timeout: .seconds(30)) }
        #expect(try await child.value == "\(SyncError.brokenBarrier)")
        #expect(barrier.isBroken)
    }

    @Test("cancelling an async wait breaks the barrier")
    func cancel() async throws {
        let barrier = try ProcessBarrier(parties: 2)
        let waiter = Task { try await barrier.wait() }
        try await waitUntil { barrier.waitingCount == 1 }
        waiter.cancel()
        await #expect(throws: SyncError.cancelled) { try await waiter.value }
        #expect(barrier.isBroken)
    }
}
