/// Per-call choices for cluster work: where it queues, in what order it runs, how often it may
/// be tried and for how long.
///
/// ```swift
/// var options = ClusterTaskOptions(queue: "render", priority: 10)
/// options.maxAttempts = 5
/// let frame = try await pool.apply(Render(), scene, options: options)
/// ```
public struct ClusterTaskOptions: Sendable, Hashable {
    /// The named queue. Workers serve the queues they were given. Default `"default"`.
    public var queue: String = "default"
    /// Higher runs first within a queue; equal priorities run in submission order. Default 0.
    public var priority: Int32 = 0
    /// How many times the task may be tried in all. Every attempt counts, whatever ended it: an
    /// error thrown by the function, a crash of the process running it, a time-out, a memory
    /// limit, or a worker host that stopped renewing its lease. When the last one fails, the
    /// task fails with that attempt's error. Default 3.
    public var maxAttempts: Int = 3
    /// Stop an attempt that runs longer than this (the worker host's local pool stops the
    /// process running it): that attempt fails with `PoolError.timedOut`. A map's chunk is one
    /// attempt for all its items.
    /// `nil`: the worker's own pool options decide.
    public var timeout: Duration?
    /// Not before this much time has passed since submission. `nil`: at once.
    public var runAfter: Duration?
    /// While a task with the same key is queued or running in the same queue, submitting
    /// another returns that one instead of queueing a second (a future of the same task).
    public var deduplicationKey: String?
    /// How long the task waits, once due, for a live worker that registered its name before it
    /// fails with ``ClusterError/unknownTaskName(_:waited:)``. Default five minutes.
    public var unknownNameTimeout: Duration = .seconds(300)

    /// Default options, or a queue and priority.
    public init(queue: String = "default", priority: Int32 = 0) {
        self.queue = queue
        self.priority = priority
    }
}
