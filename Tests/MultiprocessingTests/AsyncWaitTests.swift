import Synchronization
import Testing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// The threads of this process now (`/proc/self/task`).
func threadCount() -> Int {
    guard let dir = opendir("/proc/self/task") else { return -1 }
    defer { closedir(dir) }
    var count = 0
    while let entry = readdir(dir) {
        if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
    }
    return count
}

final class WaitCounts: Sendable {
    let started = Atomic<Int>(0)
    let finished = Atomic<Int>(0)
}

/// A primitive a thousand tasks wait on at once, and how to let each of them through.
enum WaitedPrimitive: String, CaseIterable, Sendable, CustomStringConvertible {
    case lock, semaphore, event, queueGet, queuePut
    /// Condition waiters woken by a chain of `notify(1)`: each wake-up reaches a waiting task.
    case conditionNotifyOne
    case conditionNotifyAll
    /// A barrier for the waiters and the test.
    case barrier
    var description: String { rawValue }
}

@Suite("Async waits on process-shared primitives")
struct AsyncWaitTests {
    static let waiters = 1_000

    @Test(
        "a thousand waiting tasks cost a bounded number of threads, and each gets its turn",
        arguments: WaitedPrimitive.allCases)
    func boundedThreads(primitive: WaitedPrimitive) async throws {
        let counts = WaitCounts()
        let heartbeat = Heartbeat()
        let beat = heartbeat.start()
        defer { heartbeat.stop() }
        let baseline = threadCount()
        // Each case: a body for every waiter (waits, then lets the next one through), and the
        // release of the first.
        let wait: @Sendable () async throws -> Void
        let release: () async throws -> Void
        switch primitive {
        case .lock:
            let lock = try ProcessLock()
            _ = try lock.acquireBlocking()
            wait = {
                try await lock.acquire()
                try lock.release()
            }
            release = { try lock.release() }
        case .semaphore:
            let semaphore = try ProcessSemaphore(value: 0)
            wait = {
                try await semaphore.acquire()
                try semaphore.release()
            }
            release = { try semaphore.release() }
        case .event:
            let event = try ProcessEvent()
            wait = { _ = try await event.wait() }
            release = { event.set() }
        case .queueGet:
            let queue = try ProcessQueue<Int>()
            wait = {
                let item = try await queue.get()
                try await queue.put(item)
            }
            release = { try queue.putNowait(1) }
        case .queuePut:
            let queue = try ProcessQueue<Int>(capacity: 1)
            try queue.putNowait(0)
            wait = {
                try await queue.put(1)
                _ = try await queue.get()
            }
            release = { _ = try queue.getNowait() }
        case .conditionNotifyOne, .conditionNotifyAll:
            let one = primitive == .conditionNotifyOne
            let condition = try ProcessCondition()
            let go = try SharedValue(0)
            wait = {
                try await condition.withLock {
                    while go.load() == 0 { try await condition.wait() }
                    if one { try condition.notify(1) }
                }
            }
            release = {
                try await condition.withLock {
                    go.store(1)
                    if one { try condition.notify(1) } else { try condition.notifyAll() }
                }
            }
        case .barrier:
            let barrier = try ProcessBarrier(parties: Self.waiters + 1)
            wait = { _ = try await barrier.wait() }
            release = { _ = try await barrier.wait() }
        }
        let all = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<Self.waiters {
                    group.addTask {
                        counts.started.add(1, ordering: .relaxed)
                        try await wait()
                        counts.finished.add(1, ordering: .relaxed)
                    }
                }
                try await group.waitForAll()
            }
        }
        while counts.started.load(ordering: .relaxed) < Self.waiters { await Task.yield() }
        #expect(await heartbeat.ticked(50), "the heartbeat stopped while tasks waited")
        let during = threadCount()
        #expect(counts.finished.load(ordering: .relaxed) == 0)
        // One wait thread per primitive, plus whatever the tests running alongside start: far
        // from one per task.
        #expect(during - baseline <= 64, "\(during - baseline) threads for \(Self.waiters) waiting tasks")
        try await release()
        try await all.value
        #expect(counts.finished.load(ordering: .relaxed) == Self.waiters)
        heartbeat.stop()
        await beat.value
    }

    @Test("notify(1) ends one task's wait although one thread sleeps for all; notifyAll ends every one")
    func conditionNotifyCounts() async throws {
        let condition = try ProcessCondition()
        let counts = WaitCounts()
        let heartbeat = Heartbeat()
        let beat = heartbeat.start()
        defer { heartbeat.stop() }
        let tasks = (0..<20).map { _ in
            Task {
                try await condition.withLock {
                    counts.started.add(1, ordering: .relaxed)
                    try await condition.wait()
                    counts.finished.add(1, ordering: .relaxed)
                }
            }
        }
        // Every task waits (it released the lock) once the lock can be had with 20 started.
        while true {
            let ready = try await condition.withLock { counts.started.load(ordering: .relaxed) == 20 }
            if ready { break }
            await Task.yield()
        }
        try await condition.withLock { try condition.notify(1) }
        while counts.finished.load(ordering: .relaxed) < 1 { await Task.yield() }
        #expect(await heartbeat.ticked(20))
        #expect(counts.finished.load(ordering: .relaxed) == 1, "notify(1) woke more than one task")
        try await condition.withLock { try condition.notify(2) }
        while counts.finished.load(ordering: .relaxed) < 3 { await Task.yield() }
        #expect(await heartbeat.ticked(20))
        #expect(counts.finished.load(ordering: .relaxed) == 3, "notify(2) woke more than two tasks")
        try await condition.withLock { try condition.notifyAll() }
        for task in tasks { try await task.value }
        #expect(counts.finished.load(ordering: .relaxed) == 20)
        heartbeat.stop()
        await beat.value
    }
}
