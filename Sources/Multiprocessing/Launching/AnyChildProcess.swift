/// Any ``ChildProcess``, whatever its task type: for one collection of children of different
/// tasks and one loop that joins, terminates or kills them all.
///
/// ```swift
/// let children: [any AnyChildProcess] = [
///     try ChildProcess(Producer(queue: queue)), try ChildProcess(Consumer(queue: queue)),
/// ]
/// for child in children { try await child.start() }
/// for child in children { print(child.name, try await child.join()) }
/// ```
///
/// CPython needs no such type (every `Process` is one class); results stay with the typed
/// ``ChildProcess/value-9ekns``.
public protocol AnyChildProcess: AnyObject, Sendable {
    /// The child's name (CPython's `name`).
    var name: String { get }
    /// Its process id, once started (CPython's `pid`).
    var pid: Int32? { get }
    /// `true` between the start and the exit (CPython's `is_alive()`).
    var isAlive: Bool { get }
    /// How it ended, or `nil` while it runs or before it starts (CPython's `exitcode`).
    var exitStatus: ExitStatus? { get }
    /// What it wrote to stdout, when captured (see ``ChildProcess/capturesStandardOutput``).
    var standardOutput: String { get }

    /// Starts it, blocking the calling thread: from `async` code, the `async` overload.
    func start() throws(ProcessError)
    /// Starts it without blocking the caller's thread (CPython's `start()`).
    func start() async throws(ProcessError)
    /// Waits for its exit (CPython's `join()`).
    @discardableResult
    func join() async throws(ProcessError) -> ExitStatus
    /// Waits at most `timeout` for its exit (CPython's `join(timeout)`).
    @discardableResult
    func join(timeout: Duration) async throws(ProcessError) -> ExitStatus?
    /// Sends `SIGTERM` to it and the processes it started (CPython's `terminate()`).
    func terminate()
    /// Sends `SIGKILL` to it and the processes it started (CPython's `kill()`).
    func kill()
    /// Sends `signal` to its process group.
    func send(_ signal: Signal)
}

extension ChildProcess: AnyChildProcess {}
