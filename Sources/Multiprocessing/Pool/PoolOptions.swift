import Logging

/// How many worker processes a pool runs.
public struct WorkerCount: Sendable, Hashable, ExpressibleByIntegerLiteral {
    /// The number of workers.
    public let value: Int

    /// Exactly `count` workers (at least 1).
    public init(_ count: Int) { value = max(1, count) }

    /// `workers: 4`.
    public init(integerLiteral count: Int) { self.init(count) }

    /// One worker per CPU this process may use (``CurrentProcess/cpuCount``).
    public static var cpuCount: WorkerCount { WorkerCount(CurrentProcess.cpuCount) }
}

/// A task run once in each worker before its first job: CPython's `initializer`/`initargs`.
public struct PoolInitializer: Sendable {
    let typeName: String
    let payload: [UInt8]
    let label: String
    /// Descriptors of handles among the task's properties, and the task that keeps them open.
    let descriptors: PassedDescriptors
    let owner: any Sendable

    /// Runs `task` in every worker as it starts. Its output is ignored. When it throws or
    /// crashes in three workers in a row, the pool's work fails with
    /// ``PoolError/initializerFailed(_:)``; a worker killed with `SIGKILL` while it runs (the OOM
    /// killer, an operator) is replaced without counting.
    public init<T: ProcessTask>(_ task: T) throws(ProcessError) {
        typeName = try TypeIdentity.name(of: T.self).get()
        let attachments = DescriptorTransfer.Outgoing()
        do {
            payload = try TaskCoding.encode(task, attachments: attachments)
        } catch {
            throw .codec(error)
        }
        descriptors = PassedDescriptors(attachments.descriptors)
        owner = task
        label = String(describing: T.self)
    }
}

/// What a pool's workers do and what they may not do.
public struct PoolOptions: Sendable {
    /// How workers are started. Default `.spawn`.
    public var startMethod: StartMethod = .spawn
    /// Run once in each worker before its first job.
    public var initializer: PoolInitializer?
    /// Replace a worker after it has run this many jobs (CPython's `maxtasksperchild`; a map
    /// chunk is one job). `nil`: never.
    public var maxTasksPerWorker: Int?
    /// Stop an item that runs longer than this: `SIGTERM` to its worker's process group,
    /// `SIGKILL` after ``terminationGrace``, a fresh worker, and
    /// ``PoolError/timedOut(task:after:pid:)`` for that item; the other items of its chunk keep
    /// their answers or run again. With a time-out each worker holds one job at a time.
    public var taskTimeout: Duration?
    /// How long a worker gets between `SIGTERM` and `SIGKILL`.
    public var terminationGrace: Duration = .seconds(1)
    /// Resident memory, in bytes, a worker may reach. A worker found above it between jobs is
    /// replaced; one that passes it while running a job is stopped and the job fails with
    /// ``PoolError/memoryLimitExceeded(task:residentBytes:limit:pid:)``.
    public var memoryLimit: Int?
    /// How often a busy worker's memory is checked when ``memoryLimit`` is set.
    public var memoryCheckInterval: Duration = .milliseconds(20)
    /// How many times an item whose worker died while running it is tried again on a fresh
    /// worker. Default 0: the item fails with ``PoolError/workerLost(_:)`` at once. Items that
    /// were not running when their worker died are never charged.
    public var retries: Int = 0
    /// The poison-task rule: an item that has killed this many workers fails, whatever
    /// ``retries`` says, instead of killing more.
    public var maxWorkersKilledPerTask: Int = 3
    /// Variables set in each worker's environment.
    public var environment: [String: String] = [:]
    /// Where the pool logs its events: workers started and lost (a crash at `error`, with its
    /// report), killed for a time-out or the memory limit, retries, the poison rule. Each
    /// record has `pool` metadata, and `process.pid`, `task` and `attempt` where they apply.
    /// `nil`: nowhere.
    public var logger: Logger?
    /// Whether the workers' own swift-log records come to ``logger`` (see
    /// ``ChildProcess/forwardsLogs``).
    public var forwardsWorkerLogs = false
    /// The pool's name in its log metadata and metrics (the `pool` dimension); `pool-N` when
    /// `nil`.
    public var label: String?
    /// How every worker is confined (``Sandbox``), or `nil`. A worker that cannot be confined
    /// fails the pool's work with ``PoolError/sandbox(_:)``; a worker the sandbox stops says why
    /// in ``WorkerLoss/sandboxVerdict``. ``memoryLimit`` measures a sandboxed worker's
    /// supervisor, not its task: use ``SandboxLimits/memory`` instead.
    public var sandbox: Sandbox?

    /// Default options.
    public init() {}
}
