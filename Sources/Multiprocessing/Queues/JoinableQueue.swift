import Synchronization

/// A ``ProcessQueue`` that also counts unfinished work (CPython's `multiprocessing.JoinableQueue`),
/// and knows which consumer holds which item, so that a consumer's death never leaves `join`
/// waiting forever.
///
/// Every item put adds one unfinished task; a consumer calls ``taskDone()`` when it has finished
/// with an item it took, and ``join(timeout:)`` waits until none is left. The count lives in the
/// queue's shared memory and is changed in the same step as the put, so it is exact across
/// processes.
///
/// ```swift
/// let tasks = try JoinableQueue<Job>(unfinishedItemsOfDeadConsumers: .requeue)
/// // consumers: let job = try await tasks.get(); work(job); try tasks.taskDone()
/// for job in jobs { try await tasks.put(job) }
/// try await tasks.join()          // every job has been taken and marked done
/// ```
///
/// **Consumers that die.** In CPython, a consumer killed between `get` and `task_done` leaves
/// `join` waiting forever. Here the queue records, in the same crash-safe step as each `get` and
/// `taskDone`, which process holds how many items (named by pid and start time, so a reused pid
/// is never mistaken for the dead one). `join`, and `get` waiting on an empty queue that puts
/// items back, notice a dead holder within about 50 ms (as the queue's lock notices a dead
/// holder), and its items are put back or reported as the queue was made to do
/// (``AbandonedItemPolicy``): with ``AbandonedItemPolicy/report`` (the default) `join` ends and
/// throws ``QueueError/abandoned(_:)``; with ``AbandonedItemPolicy/requeue`` the items go back to
/// the queue for other consumers, and `join` ends once they are done.
///
/// The holder is the process: its threads and tasks share its items, and ``taskDone()`` finishes
/// the **oldest** item the calling process holds. A process may not mark done items it did not
/// take (``QueueError/taskDoneTooManyTimes``). With `.requeue`, a process running several
/// consumers at once that dies has its oldest unfinished items put back, which are not always
/// the ones its consumers were working on: run one consumer per process when that matters. A
/// child started with the `.fork` method is a process of its own: it does not hold the items its
/// parent took.
///
/// An item a consumer cannot decode is dropped and counted done at once, and so is a large item
/// whose memory was lost with a killed process: `join` never waits for work nobody can do.
public final class JoinableQueue<Element: Codable & Sendable>: Sendable, Codable {
    /// The queue itself, for code that takes a ``ProcessQueue``.
    public let queue: ProcessQueue<Element>
    /// How far this handle has reported abandoned items.
    private let reported = Mutex(QueueHolders.ReportCursor())
    /// This process's async joiners: one at a time sleeps in the kernel.
    private let joiners = HandoffLock()

    /// A new, empty queue; see ``ProcessQueue/init(capacity:ringBytes:)``.
    ///
    /// - Parameters:
    ///   - capacity: The most items the queue holds, or `nil` for no limit.
    ///   - ringBytes: The size of the shared ring the items are written into.
    ///   - unfinishedItemsOfDeadConsumers: What happens to the items a consumer took and
    ///     had not marked done when its process died: reported by ``join(timeout:)`` (the
    ///     default) or put back for other consumers. With ``AbandonedItemPolicy/requeue`` the queue
    ///     keeps a copy of each item until it is marked done, in a store as large as the ring (and
    ///     up to 4096 items): an item taken while that store is full is reported instead of put
    ///     back.
    /// - Throws: ``QueueError/invalidConfiguration(_:)``, ``QueueError/memory(_:)``,
    ///   ``QueueError/system(_:)``.
    public init(
        capacity: Int? = nil, ringBytes: Int = ProcessQueue<Element>.defaultRingBytes,
        unfinishedItemsOfDeadConsumers: AbandonedItemPolicy = .report
    ) throws(QueueError) {
        queue = ProcessQueue(
            core: try QueueCore.create(
                capacity: capacity, ringBytes: ringBytes, holding: unfinishedItemsOfDeadConsumers))
    }

    // MARK: - Tasks

    /// Marks the oldest item this process took and has not marked done as finished (CPython's
    /// `task_done`).
    ///
    /// - Throws: ``QueueError/taskDoneTooManyTimes`` when this process holds no such item.
    public func taskDone() throws(QueueError) { try queue.core.taskDone() }

    /// Waits, up to `timeout` (forever if `nil`) and without blocking a cooperative thread,
    /// until every item put has been marked done, or counted finished because its consumer died.
    ///
    /// - Throws: ``QueueError/abandoned(_:)`` once every item is finished, if some were counted
    ///   finished because their consumer died (and were not put back) since this handle last
    ///   reported; ``QueueError/timedOut``, ``QueueError/cancelled``.
    public func join(timeout: Duration? = nil) async throws(QueueError) {
        if Task.isCancelled { throw .cancelled }
        let core = queue.core
        if core.unfinished != 0 {
            let deadline = WaitDeadline(after: timeout)
            let result = await WaitThreads.run(
                through: joiners, until: deadline,
                { cancellation in
                    Result { () throws(QueueError) in try core.join(.until(deadline, cancellation)) }
                },
                wake: { core.wakeAll() },
                ready: { core.unfinished == 0 ? .success(()) : nil },
                gaveUp: { .failure($0 ? .cancelled : .timedOut) })
            try result.get()
        }
        try reportAbandoned()
    }

    /// Blocks the calling thread, up to `timeout` (forever if `nil`), until every item put has
    /// been marked done, or counted finished because its consumer died.
    ///
    /// - Throws: ``QueueError/abandoned(_:)`` (see ``join(timeout:)``), ``QueueError/timedOut``.
    public func joinBlocking(timeout: Duration? = nil) throws(QueueError) {
        try queue.core.join(.until(WaitDeadline(after: timeout)))
        try reportAbandoned()
    }

    /// Throws the items abandoned since this handle last reported, if any.
    private func reportAbandoned() throws(QueueError) {
        guard let holders = queue.core.holders else { return }
        let report = reported.withLock { cursor -> AbandonedItems? in
            guard holders.abandonedTotal > cursor.items,
                let (items, next) = queue.core.abandoned(since: cursor)
            else { return nil }
            cursor = next
            return items
        }
        if let report { throw .abandoned(report) }
    }

    /// Items put and not yet marked done (a snapshot).
    public var unfinishedCount: Int { queue.core.unfinished }

    /// What the queue does with the unfinished items of a consumer that died.
    public var unfinishedItemsOfDeadConsumers: AbandonedItemPolicy {
        queue.core.holders?.policy ?? .report
    }

    /// Items counted finished because their consumer died, since the queue was made (a
    /// snapshot; ``join(timeout:)`` reports them).
    public var abandonedCount: Int { Int(clamping: queue.core.holders?.abandonedTotal ?? 0) }

    /// Items put back because their consumer died, since the queue was made (a snapshot).
    public var requeuedCount: Int { queue.core.holders?.requeuedTotal ?? 0 }

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
