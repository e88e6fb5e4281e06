import Synchronization

/// The state a pool's drivers share: the job queue, the function table and the pool's life.
final class PoolCore: Sendable {
    let options: PoolOptions
    let workerCount: Int
    /// Its logger and metrics (Observability/).
    let telemetry: PoolTelemetry

    private struct State {
        var queue = JobQueue()
        var closed = false
        var terminated = false
        var broken: String?
        var functions: [FunctionKey: UInt64] = [:]
        /// Function values whose handles own descriptors the table refers to: kept open for
        /// the pool's life, so a descriptor number is never reused under an installed id.
        var descriptorOwners: [any Sendable] = []
        var nextFunctionID: UInt64 = 1
        var liveDrivers = 0
    }

    private struct FunctionKey: Hashable {
        let typeName: String
        let payload: [UInt8]
        let descriptors: [Int32]
    }

    /// The state, and the idle drivers waiting for work in it (handed `true`: there is work;
    /// `false`: the pool is done with them).
    private let state = WaiterQueue<State, Bool>(State())
    /// Jobs submitted and not yet finished, and the tasks waiting for none to remain. Counted
    /// before a job is queued, so a job that finishes at once never takes it below zero.
    private let outstanding = WaiterQueue<Int, Void>(0)
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
        self.telemetry = PoolTelemetry(options: options)
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
            if let id = s.state.functions[key] { return id }
            defer { s.state.nextFunctionID += 1 }
            s.state.functions[key] = s.state.nextFunctionID
            if !descriptors.isEmpty, let owner { s.state.descriptorOwners.append(owner) }
            return s.state.nextFunctionID
        }
        return InstalledFunction(id: id, typeName: typeName, payload: payload, descriptors: descriptors)
    }

    /// Queues jobs and wakes idle drivers. Throws when the pool no longer takes work.
    func enqueue(_ jobs: [PoolJob]) throws(PoolError) {
        outstanding.withLock { $0.state += jobs.count }
        do {
            try state.withLock { l throws(PoolError) in
                if let broken = l.state.broken { throw .initializerFailed(broken) }
                if l.state.closed { throw .closed }
                l.state.queue.append(contentsOf: jobs)
                for _ in jobs where l.resumeFirst(true) {}
                if telemetry.metrics != nil {
                    telemetry.submitted(jobs)
                    telemetry.queueDepth(l.state.queue.count)
                }
            }
        } catch {
            finished(jobs.count)
            throw error
        }
    }

    /// Puts jobs back at the front (their worker died or was recycled before answering).
    func requeue(_ jobs: [PoolJob]) {
        guard !jobs.isEmpty else { return }
        for job in jobs { job.markQueued() }
        if isTerminated {
            for job in jobs { _ = job.cancel() }
            return
        }
        state.withLock { l in
            l.state.queue.prepend(jobs)
            l.resumeAll(true)
        }
    }

    /// Up to `max` jobs that are still wanted.
    func take(max: Int) -> [PoolJob] {
        state.withLock { l in
            var taken: [PoolJob] = []
            while taken.count < max, let job = l.state.queue.popFirst() {
                if job.isCancelled { continue }  // Its end was already counted.
                taken.append(job)
            }
            if telemetry.metrics != nil { telemetry.queueDepth(l.state.queue.count) }
            return taken
        }
    }

    /// Records that `count` jobs reached an end; wakes `drain()` waiters when none remain.
    func finished(_ count: Int) {
        outstanding.withLock { l in
            l.state -= count
            if l.state <= 0 { l.resumeAll(()) }
        }
    }

    /// Waits until there is work (`true`) or the pool is closed and empty (`false`).
    func waitForWork() async -> Bool {
        // Not cancellable: a driver ends when the pool says so, not when its task is cancelled.
        await state.wait(cancellable: false) { l in
            if !l.state.queue.isEmpty { return true }
            if l.state.closed { return false }
            return nil
        }.value ?? false
    }

    var isClosed: Bool { state.withLock { $0.state.closed } }

    /// No new work; idle drivers finish once the queue is empty.
    func close() {
        state.withLock { l in
            l.state.closed = true
            l.resumeAll(!l.state.queue.isEmpty)
        }
    }

    /// Fails everything queued and refuses new work: the initializer cannot succeed.
    func breakPool(_ reason: String) {
        let jobs = state.withLock { l in
            l.state.broken = l.state.broken ?? reason
            l.state.closed = true
            l.resumeAll(false)
            return l.state.queue.removeAll()
        }
        for job in jobs { job.fail(PoolError.initializerFailed(reason)) }
    }

    /// Fails every queued job with `error`; the pool goes on taking work.
    func failQueued(_ error: PoolError) {
        let jobs = state.withLock { $0.state.queue.removeAll() }
        for job in jobs { job.fail(error) }
    }

    var isTerminated: Bool { state.withLock { $0.state.terminated } }

    /// Stops taking and running work: queued jobs are cancelled, idle drivers end.
    func terminate() {
        let jobs = state.withLock { l in
            l.state.terminated = true
            l.state.closed = true
            l.resumeAll(false)
            return l.state.queue.removeAll()
        }
        for job in jobs { _ = job.cancel() }
    }

    /// Waits until every submitted job has finished.
    func drain() async {
        _ = await outstanding.wait(cancellable: false) { l in l.state <= 0 ? () : nil }
    }
}
