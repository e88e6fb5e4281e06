import Logging
import Synchronization

/// What a pool tells a service team: its events on ``PoolOptions/logger`` and its metrics
/// (``PoolMetrics``). Every entry point is a nil check when nobody listens: no metadata is
/// built, no clock read and nothing allocated per task.
final class PoolTelemetry: Sendable {
    /// The pool's `pool` metadata value and metrics dimension.
    let label: String
    let logger: Logger?
    let metrics: PoolMetrics?

    private static let numbering = Atomic<Int>(0)

    init(options: PoolOptions) {
        let label = options.label ?? "pool-\(Self.numbering.add(1, ordering: .relaxed).newValue)"
        self.label = label
        logger = options.logger.map { logger in
            var logger = logger
            logger[metadataKey: "pool"] = .string(label)
            return logger
        }
        metrics = PoolMetrics.make(pool: label)
    }

    // MARK: Tasks

    /// Jobs were queued.
    func submitted(_ jobs: [PoolJob]) {
        guard let metrics else { return }
        let now = MonotonicClock.now()
        for job in jobs { job.queuedAt.store(now, ordering: .relaxed) }
        metrics.submitted.increment(by: jobs.count)
    }

    /// The queue now holds `depth` jobs.
    func queueDepth(_ depth: Int) {
        metrics?.queueDepth.set(depth)
    }

    /// Jobs went to worker `pid`.
    func running(_ jobs: [PoolJob], pid: Int32) {
        if let metrics {
            let now = MonotonicClock.now()
            for job in jobs {
                let queued = job.queuedAt.load(ordering: .relaxed)
                if queued > 0 { metrics.queueWait.recordNanoseconds(now - queued) }
                job.startedAt.store(now, ordering: .relaxed)
            }
        }
        for job in jobs { job.batch.trace?.running(pid: pid) }
    }

    /// A job ended: answered (`error` nil, or the first error among its items' when some threw)
    /// or failed as a whole.
    func ended(_ job: PoolJob, error: (any Error)?, answered: Bool) {
        if let metrics {
            let started = job.startedAt.load(ordering: .relaxed)
            if started > 0 { metrics.duration.recordNanoseconds(MonotonicClock.now() - started) }
            if answered && error == nil {
                metrics.completed.increment()
            } else {
                let reason = answered ? .error : PoolMetrics.FailureReason(error ?? PoolError.cancelled)
                metrics.failed[reason]?.increment()
            }
        }
        job.batch.trace?.jobEnded(error: error)
    }

    // MARK: Workers

    /// A worker process runs.
    func workerStarted(pid: Int32, number: Int) {
        metrics?.workersAlive.increment()
        logger?.debug(
            "pool worker started",
            metadata: ["process.pid": .stringConvertible(pid), "worker": .stringConvertible(number)])
    }

    /// A worker process is gone; `cause` is `nil` when the pool is shutting down.
    func workerEnded(pid: Int32, cause: PoolMetrics.RestartCause?, status: ExitStatus?) {
        guard let metrics else { return }
        metrics.workersAlive.decrement()
        if let cause { metrics.restarts[cause]?.increment() }
    }

    /// A worker could not be started.
    func workerStartFailed(_ error: any Error) {
        logger?.error("pool worker could not start", metadata: ["error": .string("\(error)")])
    }

    /// The pool stopped a worker (time-out, memory limit, protocol violation).
    func workerStopped(pid: Int32, task: @autoclosure () -> String?, reason: StopReason) {
        guard let logger else { return }
        var metadata: Logger.Metadata = ["process.pid": .stringConvertible(pid)]
        if logger.logLevel <= .warning, let task = task() { metadata["task"] = .string(task) }
        switch reason {
        case .timedOut(let after):
            metadata["timeout"] = .string("\(after)")
            logger.warning("pool worker killed: its task timed out", metadata: metadata)
        case .memory(let resident):
            metadata["resident.bytes"] = .stringConvertible(resident)
            logger.warning("pool worker killed: over its memory limit", metadata: metadata)
        case .protocolViolation(let why):
            metadata["reason"] = .string(why)
            logger.error("pool worker killed: it broke the pool's protocol", metadata: metadata)
        case .recycle:
            logger.debug("pool worker retired", metadata: metadata)
        case .cancelled:
            logger.debug("pool worker stopped: its task was cancelled", metadata: metadata)
        }
    }

    /// A worker died by itself while running `task` (a crash, an exit, a kill from outside).
    func workerLost(
        pid: Int32, task: String, attempt: Int, status: ExitStatus, crashReport: () -> CrashReport?,
        standardErrorTail: () -> [String], willRetry: Bool, poisoned: Bool
    ) {
        guard let logger else { return }
        var metadata: Logger.Metadata = [
            "process.pid": .stringConvertible(pid), "task": .string(task),
            "attempt": .stringConvertible(attempt),
            "exit.status": .string("\(status)"),
        ]
        if logger.logLevel <= .error {
            if let report = crashReport() { metadata["crash.report"] = .string("\(report)") }
            let tail = standardErrorTail()
            if !tail.isEmpty { metadata["stderr.tail"] = .array(tail.map { .string($0) }) }
        }
        logger.error("pool worker lost while running a task", metadata: metadata)
        if willRetry {
            logger.notice("retrying task on a fresh worker", metadata: metadata)
        } else if poisoned {
            logger.error("task failed: it killed too many workers (poison rule)", metadata: metadata)
        }
    }

    /// The initializer failed, or the pool gave up on it.
    func initializerFailed(_ why: String, brokePool: Bool) {
        guard let logger else { return }
        if brokePool {
            logger.critical("pool broken: its initializer keeps failing", metadata: ["reason": .string(why)])
        } else {
            logger.warning("pool initializer failed", metadata: ["reason": .string(why)])
        }
    }
}

/// The library's span for one submitted call or map, and what its jobs have done so far.
final class BatchTrace: Sendable {
    let trace: TaskTrace
    private struct State {
        var remaining: Int
        var running = false
        var failure: (any Error)?
    }
    private let state: Mutex<State>

    init(_ trace: TaskTrace, jobs: Int) {
        self.trace = trace
        state = Mutex(State(remaining: jobs))
    }

    /// The carrier each job of the batch takes to its worker.
    var carrier: [String: String] { trace.carrier }

    func running(pid: Int32) {
        let first = state.withLock { s in
            defer { s.running = true }
            return !s.running
        }
        guard first else { return }
        trace.span.attributes["process.pid"] = Int(pid)
        trace.span.addEvent("running")
    }

    func jobEnded(error: (any Error)?) {
        let (done, failure) = state.withLock { s in
            s.remaining -= 1
            if s.failure == nil { s.failure = error }
            return (s.remaining == 0, s.failure)
        }
        if done { trace.end(error: failure) }
    }
}
