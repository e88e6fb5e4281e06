/// A ``ProcessQueue`` that also counts unfinished work (CPython's `multiprocessing.JoinableQueue`).
///
/// Every item put adds one unfinished task; a consumer calls ``taskDone()`` when it has finished
/// with an item it took, and ``join(timeout:)`` waits until none is left. The count lives in the
/// queue's shared memory and is changed in the same step as the put, so it is exact across
/// processes.
///
/// ```swift
/// let tasks = try JoinableQueue<Job>()
/// // consumers: let job = try await tasks.get(); work(job); try tasks.taskDone()
/// for job in jobs { try await tasks.put(job) }
/// try await tasks.join()          // every job has been taken and marked done
/// ```
///
/// An item a consumer cannot decode is dropped and counted done at once, and so is a large item
/// whose memory was lost with a killed process: `join` never waits for work nobody can do.
public final class JoinableQueue<Element: Codable & Sendable>: Sendable, Codable {
    /// The queue itself, for code that takes a ``ProcessQueue``.
    public let queue: ProcessQueue<Element>

    /// A new, empty queue; see ``ProcessQueue/init(capacity:ringBytes:)``.
    public init(capacity: Int? = nil, ringBytes: Int = ProcessQueue<Element>.defaultRingBytes)
        throws(QueueError)
    {
        queue = try ProcessQueue(capacity: capacity, ringBytes: ringBytes)
    }

    // MARK: - Tasks

    /// Marks one item taken from the queue as finished (CPython's `task_done`).
    ///
    /// - Throws: ``QueueError/taskDoneTooManyTimes`` when every item put is already marked done.
    public func taskDone() throws(QueueError) { try queue.core.taskDone() }

    /// Waits, up to `timeout` (forever if `nil`) and without blocking a cooperative thread,
    /// until every item put has been marked done.
    ///
    /// - Throws: ``QueueError/timedOut``, ``QueueError/cancelled``.
    public func join(timeout: Duration? = nil) async throws(QueueError) {
        if Task.isCancelled { throw .cancelled }
        let core = queue.core
        if core.unfinished == 0 { return }
        let deadline = WaitDeadline(after: timeout)
        let result = await WaitThreads.run(
            { cancellation in
                Result { () throws(QueueError) in try core.join(.until(deadline, cancellation)) }
            },
            wake: { core.wakeAll() })
        try result.get()
    }

    /// Blocks the calling thread, up to `timeout` (forever if `nil`), until every item put has
    /// been marked done.
    ///
    /// - Throws: ``QueueError/timedOut``.
    public func joinBlocking(timeout: Duration? = nil) throws(QueueError) {
        try queue.core.join(.until(WaitDeadline(after: timeout)))
    }

    /// Items put and not yet marked done (a snapshot).
    public var unfinishedCount: Int { queue.core.unfinished }

    // MARK: - The queue's operations

    /// Puts `item`, waiting while the queue is full; see ``ProcessQueue/put(_:timeout:)``.
    public func put(_ item: Element, timeout: Duration? = nil) async throws(QueueError) {
        try await queue.put(item, timeout: timeout)
    }

    /// Puts `item`, blocking while the queue is full; see ``ProcessQueue/putBlocking(_:timeout:)``.
    public func putBlocking(_ item: Element, timeout: Duration? = nil) throws(QueueError) {
        try queue.putBlocking(item, timeout: timeout)
    }

    /// Puts `item` if there is room now; see ``ProcessQueue/putNowait(_:)``.
    public func putNowait(_ item: Element) throws(QueueError) { try queue.putNowait(item) }

    /// Takes an item, waiting while the queue is empty; see ``ProcessQueue/get(timeout:)``.
    public func get(timeout: Duration? = nil) async throws(QueueError) -> Element {
        try await queue.get(timeout: timeout)
    }

    /// Takes an item, blocking while the queue is empty; see ``ProcessQueue/getBlocking(timeout:)``.
    public func getBlocking(timeout: Duration? = nil) throws(QueueError) -> Element {
        try queue.getBlocking(timeout: timeout)
    }

    /// Takes an item if there is one now; see ``ProcessQueue/getNowait()``.
    public func getNowait() throws(QueueError) -> Element { try queue.getNowait() }

    /// Closes the queue for every process; see ``ProcessQueue/close()``.
    public func close() { queue.close() }

    /// Whether the queue has been closed.
    public var isClosed: Bool { queue.isClosed }

    /// How many items the queue holds (a snapshot).
    public var count: Int { queue.count }

    /// Whether the queue holds no item (a snapshot).
    public var isEmpty: Bool { queue.isEmpty }

    /// Whether the queue holds its capacity of items (a snapshot).
    public var isFull: Bool { queue.isFull }

    /// The items, taken one by one, until the queue is closed and empty.
    public var items: QueueItems<Element> { queue.items }

    // MARK: - Codable

    /// Encodes the queue (its descriptors travel with the message).
    public func encode(to encoder: any Encoder) throws { try queue.encode(to: encoder) }

    /// Attaches to the queue in this process.
    public init(from decoder: any Decoder) throws { queue = try ProcessQueue(from: decoder) }
}
