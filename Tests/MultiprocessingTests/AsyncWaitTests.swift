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
        let release: () throws -> Void
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
        try release()
        try await all.value
        #expect(counts.finished.load(ordering: .relaxed) == Self.waiters)
        heartbeat.stop()
        await beat.value
    }
}
