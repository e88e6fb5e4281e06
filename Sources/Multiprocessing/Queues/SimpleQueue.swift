import Logging

/// A minimal unbounded queue between processes (CPython's `multiprocessing.SimpleQueue`): put,
/// get, empty, close.
///
/// It is a ``ProcessQueue`` without an item limit; only its ring bounds it (a `put` waits while
/// the ring is full). Use ``ProcessQueue`` for capacities, timeouts and non-waiting forms.
///
/// ```swift
/// let results = try SimpleQueue<Int>()
/// try await results.put(42)          // in a child
/// let answer = try await results.get()
/// ```
public final class SimpleQueue<Element: Codable & Sendable>: Sendable, Codable {
    let queue: ProcessQueue<Element>

    /// A new, empty queue with a ring of `ringBytes` (4 MiB by default); `label` and `logger`
    /// as in ``ProcessQueue/init(capacity:ringBytes:label:logger:)``.
    public init(
        ringBytes: Int = ProcessQueue<Element>.defaultRingBytes, label: String? = nil, logger: Logger? = nil
    ) throws(QueueError) {
        queue = try ProcessQueue(capacity: nil, ringBytes: ringBytes, label: label, logger: logger)
    }

    /// Puts `item` at the back, waiting (without blocking a cooperative thread) while the ring
    /// is full.
    ///
    /// - Throws: ``QueueError/closed``, ``QueueError/cancelled``, ``QueueError/codec(_:)``.
    public func put(_ item: Element) async throws(QueueError) { try await queue.put(item) }

    /// Puts `item` at the back, blocking the calling thread while the ring is full.
    ///
    /// - Throws: ``QueueError/closed``, ``QueueError/codec(_:)``.
    public func putBlocking(_ item: Element) throws(QueueError) { try queue.putBlocking(item) }

    /// Takes the item at the front, waiting (without blocking a cooperative thread) while the
    /// queue is empty.
    ///
    /// - Throws: ``QueueError/closed`` once the queue is closed and empty,
    ///   ``QueueError/cancelled``, ``QueueError/codec(_:)``.
    public func get() async throws(QueueError) -> Element { try await queue.get() }

    /// Takes the item at the front, blocking the calling thread while the queue is empty.
    ///
    /// - Throws: ``QueueError/closed`` once the queue is closed and empty, ``QueueError/codec(_:)``.
    public func getBlocking() throws(QueueError) -> Element { try queue.getBlocking() }

    /// Whether the queue holds no item (a snapshot; CPython's `empty()`).
    public var isEmpty: Bool { queue.isEmpty }

    /// Closes the queue for every process; see ``ProcessQueue/close()``.
    public func close() { queue.close() }

    /// The items, taken one by one, until the queue is closed and empty.
    public var items: QueueItems<Element> { queue.items }

    /// Encodes the queue (its descriptors travel with the message).
    public func encode(to encoder: any Encoder) throws { try queue.encode(to: encoder) }

    /// Attaches to the queue in this process.
    public init(from decoder: any Decoder) throws { queue = try ProcessQueue(from: decoder) }
}
