import Multiprocessing

/// How a ``ClusterWorker`` serves the queue.
public struct ClusterWorkerOptions: Sendable {
    /// The queues this worker takes work from. Default `["default"]`.
    public var queues: [String] = ["default"]
    /// How many tasks run at once: the size of the worker's local `ProcessPool`. Default: one
    /// per CPU this process may use.
    public var concurrency: WorkerCount = .cpuCount
    /// The local pool's options (time-out, memory limit, start method, environment, the
    /// poison rule's `maxWorkersKilledPerTask`). Its `retries` is not used: each attempt runs
    /// once, and the queue decides about the next (``ClusterTaskOptions/maxAttempts``).
    public var pool = PoolOptions()
    /// How long a claim lasts without renewal. A worker host that stops renewing (it died, or
    /// lost the database) loses its tasks to the rescuer after this long. Default 30 s.
    public var lease: Duration = .seconds(30)
    /// How often held leases are renewed. `nil`: a third of ``lease``.
    public var heartbeatInterval: Duration?
    /// How often this worker returns other workers' expired leases to the queue and fails
    /// tasks that no live worker can run. Default 2 s.
    public var rescueInterval: Duration = .seconds(2)
    /// How many tasks the worker holds at most (running plus claimed ahead, so that a batch is
    /// claimed in one statement). `nil`: it adapts — four per concurrency slot, at least 8,
    /// so that tasks queued behind a slow one go to other workers; and once attempts prove
    /// quick (eight in a row under a millisecond), 64 per slot, at least 256, so that one claim
    /// and one write of outcomes (each a commit) serve hundreds of tasks. A value here is used
    /// throughout.
    public var maximumHeld: Int?
    /// How long a finished task's outcome may wait, while the worker still has tasks running or
    /// claimed, to be written together with the next ones. Every write is a commit (a WAL flush,
    /// milliseconds on many disks), so writing outcomes in batches is what lets short tasks run
    /// faster than the disk flushes. A worker with nothing else to run writes at once, and so does
    /// one with a quarter of what it may hold waiting; the wait never delays a result beyond this.
    /// Default 10 ms; `.zero` writes each outcome as soon as the previous write returned.
    public var completionDelay: Duration = .milliseconds(10)
    /// On graceful shutdown, how long running tasks get to finish before they are stopped and
    /// handed back to the queue. Default 30 s.
    public var shutdownGrace: Duration = .seconds(30)
    /// Whether ``ClusterWorker/run()`` reacts to `SIGTERM` and `SIGINT` itself: the first
    /// starts a graceful shutdown, the second stops at once. Default `true`. In a
    /// `ServiceGroup`, the group's graceful shutdown and cancellation do the same either way.
    public var handlesSignals = true
    /// The name recorded for this worker's host. `nil`: the system's host name.
    public var hostName: String?

    /// Default options.
    public init() {}

    var heldLimit: Int { maximumHeld ?? Swift.max(8, concurrency.value * 4) }
    var quickHeldLimit: Int { maximumHeld ?? Swift.max(256, concurrency.value * 64) }
    var heartbeat: Duration { heartbeatInterval ?? lease / 3 }
}
