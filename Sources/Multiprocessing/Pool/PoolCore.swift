import Synchronization

/// The state a pool's drivers share: the job queue, the function table and the pool's life.
final class PoolCore: Sendable {
    let options: PoolOptions
    let workerCount: Int

    private struct State {
        var queue = JobQueue()
        var idleDrivers: [UnsafeContinuation<Bool, Never>] = []
        var closed = false
        var terminated = false
        var broken: String?
        var functions: [FunctionKey: UInt64] = [:]
        /// Function values whose handles own descriptors the table refers to: kept open for
        /// the pool's life, so a descriptor number is never reused under an installed id.
        var descriptorOwners: [any Sendable] = []
        var nextFunctionID: UInt64 = 1
        var liveDrivers = 0
        var drainWaiters: [UnsafeContinuation<Void, Never>] = []
        /// Jobs submitted and not yet finished.
        var outstanding = 0
    }

    private struct FunctionKey: Hashable {
        let typeName: String
        let payload: [UInt8]
        let descriptors: [Int32]
    }

    private let state = Mutex(State())
    private let nextJobID = Atomic<UInt64>(1)
    /// Initializer failures and deaths while starting since a worker last became ready.
    private let initializerFailures = Atomic<Int>(0)
    private let startupLosses = Atomic<Int>(0)

    /// How many initializer failures in a row fail the pool's work.
    static let initializerAttempts = 3
    /// How many workers in a row may die while starting (killed, not failing their
    /// initializer) before the pool gives up: something kills every worker it starts.
    static let startupAttempts = 50

    /// A worker finished starting: earlier startup failures were not for good.
    func workerReady() {
        initializerFailures.store(0, ordering: .relaxed)
        startupLosses.store(0, ordering: .relaxed)
    }

    /// Counts an initializer failure; returns how many in a row.
    func initializerFailed() -> Int { initializerFailures.add(1, ordering: .relaxed).newValue }

    /// Counts a worker killed while starting; returns how many in a row.
    func startupLost() -> Int { startupLosses.add(1, ordering: .relaxed).newValue }

    init(workers: Int, options: PoolOptions) {
        self.workerCount = workers
        self.options = options
    }

    /// The first of `count` fresh job ids.
    func newJobIDs(_ count: Int) -> UInt64 {
        nextJobID.add(UInt64(count), ordering: .relaxed).oldValue
    }

    /// The id under which workers know this function value.
    func install(
        typeName: String, payload: [UInt8], descriptors: [Int32] = [], owner: (any Sendable)? = nil
    ) -> InstalledFunction {
        let key = FunctionKey(typeName: typeName, payload: payload, descriptors: descriptors)
        let id = state.withLock { s in
            if let id = s.functions[key] { return id }
            defer { s.nextFunctionID += 1 }
            s.functions[key] = s.nextFunctionID
            if !descriptors.isEmpty, let owner { s.descriptorOwners.append(owner) }
            return s.nextFunctionID
        }
        return InstalledFunction(id: id, typeName: typeName, payload: payload, descriptors: descriptors)
    }

    /// Queues jobs and wakes idle drivers. Throws when the pool no longer takes work.
    func enqueue(_ jobs: [PoolJob]) throws(PoolError) {
        let woken = try state.withLock { s throws(PoolError) -> [UnsafeContinuation<Bool, Never>] in
            if let broken = s.broken { throw .initializerFailed(broken) }
            if s.closed { throw .closed }
            s.queue.append(contentsOf: jobs)
            s.outstanding += jobs.count
            let n = min(s.idleDrivers.count, jobs.count)
            defer { s.idleDrivers.removeFirst(n) }
            return Array(s.idleDrivers.prefix(n))
        }
        for driver in woken { driver.resume(returning: true) }
    }

    /// Puts jobs back at the front (their worker died or was recycled before answering).
    func requeue(_ jobs: [PoolJob]) {
        guard !jobs.isEmpty else { return }
        for job in jobs { job.markQueued() }
        if isTerminated {
            for job in jobs { _ = job.cancel() }
            return
        }
        let woken = state.withLock { s -> [UnsafeContinuation<Bool, Never>] in
            s.queue.prepend(jobs)
            defer { s.idleDrivers.removeAll() }
            return s.idleDrivers
        }
        for driver in woken { driver.resume(returning: true) }
    }

    /// Up to `max` jobs that are still wanted.
    func take(max: Int) -> [PoolJob] {
        state.withLock { s in
            var taken: [PoolJob] = []
            while taken.count < max, let job = s.queue.popFirst() {
                if job.isCancelled { continue }  // Its end was already counted.
                taken.append(job)
            }
            return taken
        }
    }

    /// Records that `count` jobs reached an end; wakes `drain()` waiters when none remain.
    func finished(_ count: Int) {
        let waiters = state.withLock { s -> [UnsafeContinuation<Void, Never>] in
            s.outstanding -= count
            guard s.outstanding <= 0 else { return [] }
            defer { s.drainWaiters.removeAll() }
            return s.drainWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Waits until there is work (`true`) or the pool is closed and empty (`false`).
    func waitForWork() async -> Bool {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Bool, Never>) in
            let answer: Bool? = state.withLock { s in
                if !s.queue.isEmpty { return true }
                if s.closed { return false }
                s.idleDrivers.append(continuation)
                return nil
            }
            if let answer { continuation.resume(returning: answer) }
        }
    }

    var isClosed: Bool { state.withLock { $0.closed } }

    /// No new work; idle drivers finish once the queue is empty.
    func close() {
        let woken = state.withLock { s -> [UnsafeContinuation<Bool, Never>] in
            s.closed = true
            defer { s.idleDrivers.removeAll() }
            return s.idleDrivers
        }
        for driver in woken { driver.resume(returning: !isQueueEmpty) }
    }

    private var isQueueEmpty: Bool { state.withLock { $0.queue.isEmpty } }

    /// Fails everything queued and refuses new work: the initializer cannot succeed.
    func breakPool(_ reason: String) {
        let (jobs, woken) = state.withLock { s in
            s.broken = s.broken ?? reason
            s.closed = true
            defer { s.idleDrivers.removeAll() }
            return (s.queue.removeAll(), s.idleDrivers)
        }
        for job in jobs { job.fail(PoolError.initializerFailed(reason)) }
        for driver in woken { driver.resume(returning: false) }
    }

    /// Fails every queued job with `error`; the pool goes on taking work.
    func failQueued(_ error: PoolError) {
        let jobs = state.withLock { $0.queue.removeAll() }
        for job in jobs { job.fail(error) }
    }

    var isTerminated: Bool { state.withLock { $0.terminated } }

    /// Stops taking and running work: queued jobs are cancelled, idle drivers end.
    func terminate() {
        let (jobs, woken) = state.withLock { s in
            s.terminated = true
            s.closed = true
            defer { s.idleDrivers.removeAll() }
            return (s.queue.removeAll(), s.idleDrivers)
        }
        for job in jobs { _ = job.cancel() }
        for driver in woken { driver.resume(returning: false) }
    }

    /// Waits until every submitted job has finished.
    func drain() async {
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let done = state.withLock { s in
                if s.outstanding <= 0 { return true }
                s.drainWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }
}
