import Dispatch
import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

// Tasks for the shared-memory and synchronization tests (internal, at file scope, so a child can
// find them by name).

/// Increments a plain counter in shared memory `count` times, each under the lock.
struct LockedIncrementer: ProcessTask {
    var lock: ProcessLock
    var memory: SharedMemory
    var count: Int
    func run() async throws {
        let counter = memory.baseAddress.assumingMemoryBound(to: Int.self)
        for _ in 0..<count {
            lock.withLockBlocking { counter.pointee += 1 }
        }
    }
}

/// Same, through the async acquire.
struct AsyncLockedIncrementer: ProcessTask {
    var lock: ProcessLock
    var memory: SharedMemory
    var count: Int
    func run() async throws {
        let counter = memory.baseAddress.assumingMemoryBound(to: Int.self)
        for _ in 0..<count {
            try await lock.withLock { counter.pointee += 1 }
        }
    }
}

/// Takes the lock, says so through a flag in shared memory, and sleeps holding it (to be killed).
struct LockHolder: ProcessTask {
    var lock: ProcessLock
    var flag: SharedMemory
    func run() async throws {
        try lock.acquireBlocking()
        flag.baseAddress.storeBytes(of: 1, as: Int.self)
        while true { sleep(10) }
    }
}

/// Waits until a shared Int at offset 0 becomes `value` (polling; tests only).
func waitForFlag(_ memory: SharedMemory, _ value: Int = 1, seconds: Double = 10) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while memory.baseAddress.load(as: Int.self) != value {
        if ContinuousClock.now > deadline { throw FlagTimeout() }
        try await Task.sleep(for: .milliseconds(2))
    }
}

struct FlagTimeout: Error {}

/// Runs a blocking call on a Dispatch thread, so it never holds one of the few cooperative
/// threads that the other tests, running in parallel, need (two on a 2-core machine).
@discardableResult
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        detachedThread { continuation.resume(with: Result { try body() }) }
    }
}

/// Runs `body` on a new thread of its own, not on Dispatch's global queue: that queue runs as
/// many blocked items as the machine has cores (two here), so tests that block on it in
/// parallel waited for each other until their time-outs (a CI run failed on it).
func detachedThread(_ body: @escaping @Sendable () -> Void) {
    let work = ThreadWork(body)
    var thread = pthread_t()
    let rc = pthread_create(
        &thread, nil,
        { raw in
            Unmanaged<ThreadWork>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, Unmanaged.passRetained(work).toOpaque())
    precondition(rc == 0, "pthread_create: \(rc)")
    pthread_detach(thread)
}

/// Holds the lock while a task of its own waits for it (a contended async wait), then lets go.
struct ContendedAsyncWaiter: ProcessTask {
    var lock: ProcessLock
    func run() async throws {
        _ = try lock.acquireBlocking()
        // Structured (`async let`), so it runs on the forked child's executor; and no
        // `Task.sleep`: a Dispatch timer in a `.fork` child writes to an eventfd number the
        // parent had, here the control socket.
        async let waiter = lock.acquire()
        let end = ContinuousClock.now + .milliseconds(30)
        while ContinuousClock.now < end { await Task.yield() }
        try lock.release()
        _ = try await waiter
        try lock.release()
    }
}
