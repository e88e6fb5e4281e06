/// Why cluster work failed, other than an error thrown by the function itself (which comes back
/// as itself, or as a `RemoteError`) or a `PoolError` from the worker host's
/// local pool (a crash, a time-out, a memory limit: it comes back as that `PoolError`).
/// Cancellation and a result wait that timed out are `PoolError.cancelled` and
/// `PoolError.resultTimedOut`, as with a local pool.
public enum ClusterError: Error, Sendable, Hashable, CustomStringConvertible {
    /// No live worker registered this task name within the task's
    /// ``ClusterTaskOptions/unknownNameTimeout``.
    case unknownTaskName(String, waited: Duration)
    /// The worker could not decode the task's stored function or input (a corrupt row, or a
    /// producer built with a different version of the type).
    case undecodablePayload(task: Int64, taskName: String, reason: String)
    /// The producer could not decode the stored result or error.
    case undecodableResult(task: Int64, reason: String)
    /// The value could not be encoded for the queue.
    case encodingFailed(String)
    /// Every attempt ended with the worker host gone (its lease expired), the last one too.
    case leaseExpired(task: Int64, attempts: Int)
    /// There is no task with this id (never created, or purged).
    case noSuchTask(Int64)
    /// The database could not be reached for longer than the configured reconnect time-out, or
    /// it refused a statement.
    case database(String)
    /// A configuration value is not usable.
    case invalidConfiguration(String)
    /// The pool or worker is not running (its `run()` has not started, or has ended).
    case notRunning
    /// The stored schema is newer than this library knows.
    case schemaTooNew(found: Int, known: Int)

    /// A sentence that says what happened.
    public var description: String {
        switch self {
        case .unknownTaskName(let name, let waited):
            "no live worker registered task name '\(name)' within \(waited)"
        case .undecodablePayload(let task, let name, let reason):
            "task \(task) (\(name)): its stored function or input cannot be decoded: \(reason)"
        case .undecodableResult(let task, let reason):
            "task \(task): its stored result cannot be decoded: \(reason)"
        case .encodingFailed(let why): "cannot encode for the queue: \(why)"
        case .leaseExpired(let task, let attempts):
            "task \(task): its worker stopped renewing its lease, \(attempts) attempt(s) in all"
        case .noSuchTask(let id): "there is no task \(id)"
        case .database(let why): "database: \(why)"
        case .invalidConfiguration(let why): "invalid configuration: \(why)"
        case .notRunning: "not running"
        case .schemaTooNew(let found, let known):
            "the queue's schema is at version \(found); this library knows up to \(known)"
        }
    }
}
