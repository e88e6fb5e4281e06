import Logging

/// A first-in, first-out queue shared by many producer and consumer processes (CPython's
/// `multiprocessing.Queue`).
///
/// Items are `Codable` values, encoded with the package's binary codec straight into a ring
/// buffer in shared memory: there is no feeder thread and no pipe. When ``put(_:timeout:)``
/// returns, the item is in shared memory, so a producer may exit at once without losing it.
/// Items too large for the ring (over a quarter of it) go into memory of their own, whose
/// descriptor travels to the consumer that takes them.
///
/// ```swift
/// let queue = try ProcessQueue<String>(capacity: 3)
/// // Pass `queue` to children as a stored property of their task.
/// try await queue.put("hello")                      // waits while the queue is full
/// let line = try await queue.get(timeout: .seconds(1))
/// do { try queue.putNowait("x") } catch .full { }  // CPython's put_nowait raising Full
/// ```
///
/// Every form comes in three flavours: `async` (waits without holding one of Swift's
/// cooperative threads, and can be cancelled), `Blocking` (blocks the calling thread, for
/// synchronous code), and `Nowait` (never waits: ``QueueError/full`` or ``QueueError/empty``).
///
/// The queue survives its users dying: a process killed by `SIGKILL` in the middle of a `get`
/// or a `put` leaves every item either in the queue or taken, never half of one, and the others
/// carry on (the next one to take the queue's lock finishes or rolls back the dead one's change).
public final class ProcessQueue<Element: Codable & Sendable>: Sendable, Codable {
    let core: QueueCore
    /// How items become bytes.
    let form: QueueItemForm
    /// This process's async getters and putters: one of each at a time sleeps in the kernel.
    private let getters = HandoffLock()
    private let putters = HandoffLock()

    /// The ring size used when none is given: 4 MiB (items up to 1 MiB encoded go in the ring).
    public static var defaultRingBytes: Int { QueueCore.defaultRingBytes }

    /// A new, empty queue.
    ///
    /// - Parameters:
    ///   - capacity: The most items the queue holds; `put` waits (and `putNowait` throws
    ///     ``QueueError/full``) while it holds that many. `nil`: no item limit.
    ///   - ringBytes: The shared ring's size. Whatever the capacity, the encoded items waiting
    ///     must fit in it; an item larger than a quarter of it travels outside the ring.
    ///   - label: The queue's `queue` log metadata and metrics dimension (`queue-N` if `nil`).
    ///   - logger: Where this process logs the queue's rare events: its lock taken over from a
    ///     process that died holding it, a large item lost with its producer (`warning`).
    ///     `nil`: ``CurrentProcess/logger``. The logger and the metrics (made here when a
    ///     metrics backend is bootstrapped) belong to this handle; a copy sent to another
    ///     process has neither.
    /// - Throws: ``QueueError/invalidConfiguration(_:)``, ``QueueError/memory(_:)`` or
    ///   ``QueueError/system(_:)``.
    public init(
        capacity: Int? = nil, ringBytes: Int = defaultRingBytes, label: String? = nil, logger: Logger? = nil
    ) throws(QueueError) {
        core = try QueueCore.create(
            capacity: capacity, ringBytes: ringBytes,
            telemetry: QueueTelemetry.make(label: label, logger: logger))
        form = .of(Element.self)
    }

    init(core: QueueCore) {
        self.core = core
        form = .of(Element.self)
    }

    /// The most items the queue holds, or `nil` for no limit.
    public var capacity: Int? { core.capacity == 0 ? nil : core.capacity }

    /// The ring's size in bytes.
    public var ringBytes: Int { core.ringBytes }

    // MARK: - Put

    /// Puts `item` at the back, waiting up to `timeout` (forever if `nil`) while the queue is full,
    /// without blocking a cooperative thread.
    ///
    /// - Throws: ``QueueError/timedOut``, ``QueueError/cancelled`` (nothing was put),
    ///   ``QueueError/closed``, ``QueueError/codec(_:)`` when `item` cannot be encoded.
    public func put(_ item: Element, timeout: Duration? = nil) async throws(QueueError) {
        if Task.isCancelled { throw .cancelled }
        let outgoing = try prepare(item)
        do {
            // Never waits on this cooperative thread, not even for the queue's lock.
            try core.put(outgoing, .attempt)
            outgoing.release()
            return
        } catch .full {
        } catch {
            outgoing.release()
            throw error
        }
        let deadline = WaitDeadline(after: timeout)
        let core = self.core
        let result = await WaitThreads.run(
            through: putters, until: deadline,
            { cancellation in
                Result { () throws(QueueError) in try core.put(outgoing, .until(deadline, cancellation)) }
            },
            wake: { core.wakeAll() }, gaveUp: { .failure($0 ? .cancelled : .timedOut) })
        outgoing.release()
        try result.get()
    }

    /// Puts `item` at the back, blocking the calling thread up to `timeout` (forever if `nil`)
    /// while the queue is full.
    ///
    /// - Throws: ``QueueError/timedOut``, ``QueueError/closed``, ``QueueError/codec(_:)``.
    public func putBlocking(_ item: Element, timeout: Duration? = nil) throws(QueueError) {
        try put(item, .until(WaitDeadline(after: timeout)))
    }

    /// Puts `item` at the back if there is room now (CPython's `put_nowait`).
    ///
    /// - Throws: ``QueueError/full`` (CPython's `queue.Full`), ``QueueError/closed``,
    ///   ``QueueError/codec(_:)``.
    public func putNowait(_ item: Element) throws(QueueError) {
        try put(item, .immediately)
    }

    private func put(_ item: Element, _ wait: QueueWait) throws(QueueError) {
        let none = UnsafeRawBufferPointer(start: nil, count: 0)
        switch form {
        case .raw:
            // No copy, no allocation: the value's memory goes straight into the ring.
            try withUnsafeBytes(of: item) { bytes throws(QueueError) in
                try core.put(none, bytes, length: bytes.count, wait)
            }
        case .plainArray:
            // The array's memory goes straight into the ring, or into its own segment.
            var failure: QueueError? = nil
            QueueItemForm.withPlainArrayParts(item) { head, body in
                failure = putParts(head, body, wait)
            }
            if let failure { throw failure }
        case .codec:
            let outgoing = try prepare(item)
            defer { outgoing.release() }
            try core.put(outgoing, wait)
        }
    }

    private func putParts(_ head: UnsafeRawBufferPointer, _ body: UnsafeRawBufferPointer, _ wait: QueueWait)
        -> QueueError?
    {
        do {
            let length = head.count + body.count
            if length <= core.maximumInline {
                try core.put(head, body, length: length, wait)
            } else {
                let outgoing = try core.prepare(head, body)
                defer { outgoing.release() }
                try core.put(outgoing, wait)
            }
            return nil
        } catch {
            return error
        }
    }

    /// Encodes `item` into bytes that can wait on another thread.
    private func prepare(_ item: Element) throws(QueueError) -> OutgoingItem {
        switch form {
        case .raw:
            let bytes = withUnsafeBytes(of: item) { Array($0) }
            return OutgoingItem(bytes: bytes, descriptor: -1, length: bytes.count)
        case .plainArray:
            var prepared: Result<OutgoingItem, QueueError> = .failure(.empty)
            QueueItemForm.withPlainArrayParts(item) { head, body in
                prepared = Result { () throws(QueueError) in try core.prepare(head, body) }
            }
            return try prepared.get()
        case .codec:
            let bytes: [UInt8]
            do {
                bytes = try BinaryEncoder().encode(item)
            } catch {
                throw .codec(error)
            }
            return try core.prepare(bytes)
        }
    }

    // MARK: - Get

    /// Takes the item at the front, waiting up to `timeout` (forever if `nil`) while the queue is
    /// empty, without blocking a cooperative thread.
    ///
    /// - Throws: ``QueueError/timedOut``, ``QueueError/cancelled`` (nothing was taken),
    ///   ``QueueError/closed`` once the queue is closed and empty, ``QueueError/codec(_:)`` when
    ///   the item does not decode as `Element` (it is dropped).
    public func get(timeout: Duration? = nil) async throws(QueueError) -> Element {
        if Task.isCancelled { throw .cancelled }
        do {
            // Never waits on this cooperative thread, not even for the queue's lock.
            return try core.get(.attempt, decode)
        } catch .empty {
        }
        let deadline = WaitDeadline(after: timeout)
        let result = await WaitThreads.run(
            through: getters, until: deadline,
            { [self] cancellation in
                Result { () throws(QueueError) -> Element in
                    try core.get(.until(deadline, cancellation), decode)
                }
            },
            wake: { [core] in core.wakeAll() }, gaveUp: { .failure($0 ? .cancelled : .timedOut) })
        return try result.get()
    }

    /// Takes the item at the front, blocking the calling thread up to `timeout` (forever if `nil`)
    /// while the queue is empty.
    ///
    /// - Throws: ``QueueError/timedOut``, ``QueueError/closed`` once the queue is closed and
    ///   empty, ``QueueError/codec(_:)``.
    public func getBlocking(timeout: Duration? = nil) throws(QueueError) -> Element {
        try core.get(.until(WaitDeadline(after: timeout)), decode)
    }

    /// Takes the item at the front if there is one now (CPython's `get_nowait`).
    ///
    /// - Throws: ``QueueError/empty`` (CPython's `queue.Empty`), ``QueueError/closed`` once the
    ///   queue is closed and empty, ``QueueError/codec(_:)``.
    public func getNowait() throws(QueueError) -> Element {
        try core.get(.immediately, decode)
    }

    private func decode(_ bytes: UnsafeRawBufferPointer) throws(CodecError) -> Element {
        if form == .raw {
            guard bytes.count == MemoryLayout<Element>.size else {
                throw .truncated(needed: MemoryLayout<Element>.size, available: bytes.count)
            }
            return bytes.load(as: Element.self)
        }
        return try BinaryDecoder().decode(Element.self, from: bytes)
    }

    // MARK: - State

    /// Closes the queue for every process holding it: puts fail with ``QueueError/closed``, gets
    /// take what is left and then fail with ``QueueError/closed``, and every waiter wakes.
    /// Idempotent. (CPython's `close` only concerns the calling process's feeder thread, which
    /// this queue does not have.)
    public func close() { core.close() }

    /// Whether the queue has been closed.
    public var isClosed: Bool { core.isClosed }

    /// How many items the queue holds (a snapshot: other processes may change it at any time;
    /// CPython's `qsize`).
    public var count: Int { core.approximateCount }

    /// Whether the queue holds no item (a snapshot).
    public var isEmpty: Bool { count == 0 }

    /// Whether the queue holds its capacity of items (a snapshot; always `false` without a
    /// capacity, although a full ring also makes `put` wait).
    public var isFull: Bool { core.capacity > 0 && count >= core.capacity }

    /// How many times a process took the queue over from one that died holding its lock.
    public var ownerDeaths: Int { core.recoveries }

    /// The items, taken one by one, until the queue is closed and empty.
    public var items: QueueItems<Element> { QueueItems(queue: self) }

    // MARK: - Codable

    /// Encodes the queue's shared memory and side channel (their descriptors travel with the
    /// message). Works inside a task given to a child, a pool function or initializer, or a
    /// message on a ``ProcessChannel``.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        try container.encode(String(reflecting: Element.self))
        try container.encode(core.memory)
        try core.sockets.encode(to: &container, encoder)
    }

    /// Attaches to the queue in this process.
    public convenience init(from decoder: any Decoder) throws {
        var container = try decoder.unkeyedContainer()
        let type = try container.decode(String.self)
        let memory = try container.decode(SharedMemory.self)
        let sockets = try QueueSockets.decode(from: &container, decoder)
        guard type == String(reflecting: Element.self) else {
            throw SharedMemoryError.layoutMismatch(
                "ProcessQueue<\(String(reflecting: Element.self))> sent as a queue of \(type)")
        }
        self.init(core: try QueueCore(memory: memory, sockets: sockets))
    }
}
