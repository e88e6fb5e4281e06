/// Why pool work failed, other than an error thrown by the function itself (which comes back
/// as itself, or as a ``RemoteError``).
public enum PoolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The worker running this task died: a trap, a signal (an OOM kill is `SIGKILL`), an exit.
    case workerLost(WorkerLoss)
    /// The task ran past the pool's per-task time-out; its worker was stopped and replaced.
    case timedOut(task: String, after: Duration, pid: Int32)
    /// The task's worker grew past the pool's memory limit while running it; the worker was
    /// stopped and replaced.
    case memoryLimitExceeded(task: String, residentBytes: Int, limit: Int, pid: Int32)
    /// The pool is closed (or terminated): it takes no new work.
    case closed
    /// The pool's initializer failed in a worker, so no worker can run tasks.
    case initializerFailed(String)
    /// Waiting for the result timed out (the task itself goes on; cancel it to stop it).
    case resultTimedOut
    /// The task was cancelled.
    case cancelled
    /// A worker sent something the pool cannot read.
    case protocolError(String)
    /// No worker could be started (the system is out of descriptors, processes or memory, or
    /// something kills every worker as it starts): the work that was waiting fails, and the
    /// pool tries again for the next. `cause` is the system call that failed, when one did
    /// (`EMFILE` at the descriptor limit, `EAGAIN` out of processes or threads).
    case workerStartFailed(String, cause: SystemError?)
    /// No worker could be confined as ``PoolOptions/sandbox`` asks (a restriction this kernel
    /// or these privileges do not allow): the work that was waiting fails; nothing of it ran.
    case sandbox(SandboxError)

    /// A sentence that says what happened.
    public var description: String {
        switch self {
        case .workerLost(let loss): loss.description
        case .timedOut(let task, let after, let pid):
            "task \(task) timed out after \(after); worker \(pid) was stopped and replaced"
        case .memoryLimitExceeded(let task, let resident, let limit, let pid):
            "task \(task) made worker \(pid) grow to \(resident) bytes, past the limit of \(limit); the worker was stopped and replaced"
        case .closed: "the pool is closed"
        case .initializerFailed(let why): "the pool's initializer failed: \(why)"
        case .resultTimedOut: "the result did not arrive in time"
        case .cancelled: "the task was cancelled"
        case .protocolError(let why): "pool protocol error: \(why)"
        case .workerStartFailed(let why, _): "the pool could not start a worker: \(why)"
        case .sandbox(let error): "the pool could not confine a worker: \(error)"
        }
    }
}

/// What is known about a worker that died while running a task.
public struct WorkerLoss: Sendable, Hashable, CustomStringConvertible {
    /// The task: `"#index"` for a map item, or the input's description.
    public var task: String
    /// The worker's pid.
    public var pid: Int32
    /// How the worker ended.
    public var status: ExitStatus
    /// The last lines the worker wrote to stderr.
    public var standardErrorTail: [String]
    /// How many workers this task has killed so far (more than 1 with retries).
    public var workersKilled: Int
    /// Where the worker crashed, from its crash handler: `nil` for a `SIGKILL` (an OOM kill),
    /// an exit, or a worker that died before it could report.
    public var crashReport: CrashReport?
    /// Why the worker's sandbox (``PoolOptions/sandbox``) stopped it, if it did.
    public var sandboxVerdict: SandboxVerdict?

    /// Creates a record.
    public init(
        task: String, pid: Int32, status: ExitStatus, standardErrorTail: [String], workersKilled: Int,
        crashReport: CrashReport? = nil, sandboxVerdict: SandboxVerdict? = nil
    ) {
        self.task = task
        self.pid = pid
        self.status = status
        self.standardErrorTail = standardErrorTail
        self.workersKilled = workersKilled
        self.crashReport = crashReport
        self.sandboxVerdict = sandboxVerdict
    }

    /// The function the crash is blamed on, demangled, if the worker reported one.
    public var crashingFunction: String? { crashReport?.crashingFunction }

    /// `"worker 42 running task #3 was killed by SIGKILL (Killed)"`, the crashing function, the
    /// stderr lines and the backtrace.
    public var description: String {
        var text = "worker \(pid) running task \(task) "
        if let sandboxVerdict { text += "\(sandboxVerdict) and was stopped by its sandbox: " }
        text += "\(status)"
        if let function = crashingFunction { text += " in \(function)" }
        if workersKilled > 1 { text += " (this task has now killed \(workersKilled) workers)" }
        if !standardErrorTail.isEmpty {
            text += "; last stderr lines:\n  " + standardErrorTail.joined(separator: "\n  ")
        }
        if let crashReport { text += "\nbacktrace of the crashing thread:" + crashReport.frameLines }
        return text
    }

    /// The signal that killed the worker, if one did.
    public var signal: Signal? {
        if case .signaled(let signal) = status { return signal }
        return nil
    }
}
