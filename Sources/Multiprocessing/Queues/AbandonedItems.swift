/// Items that consumers of a ``JoinableQueue`` took and never marked done because their process
/// died, and that were counted as finished instead of being done: what
/// ``JoinableQueue/join(timeout:)`` reports with ``QueueError/abandoned(_:)``.
///
/// ```swift
/// do {
///     try await jobs.join()
/// } catch .abandoned(let lost) {
///     print(lost)   // "2 items abandoned: 2 by pid 4711 (the consumer died)"
/// }
/// ```
public struct AbandonedItems: Sendable, Hashable, CustomStringConvertible {
    /// Why an item was counted as finished instead of being done.
    public enum Reason: Sendable, Hashable, CustomStringConvertible {
        /// Its consumer died, and the queue was made with ``AbandonedItemPolicy/report``.
        case consumerDied
        /// Its consumer died, and the queue could not keep the item's bytes to put it back: the
        /// queue's store for items being worked on was full when it was taken (it holds as many
        /// bytes as the ring, and 4096 items).
        case notKept
        /// Its consumer died, and it had been delivered as many times as
        /// ``AbandonedItemPolicy/requeue(maxDeliveries:)`` allows (every consumer that took it
        /// died: it may be what kills them).
        case deliveryLimit
        /// Its consumer died after the queue was closed: the other consumers may have stopped
        /// taking items, so putting it back could leave `join` waiting forever.
        case queueClosed

        /// A phrase for logs.
        public var description: String {
            switch self {
            case .consumerDied: "the consumer died"
            case .notKept: "the consumer died; the item was not kept to be put back"
            case .deliveryLimit: "the consumer died; the item's every delivery ended in a death"
            case .queueClosed: "the consumer died after the queue was closed"
            }
        }
    }

    /// A dead consumer's share of the abandoned items.
    public struct Consumer: Sendable, Hashable {
        /// The dead consumer's process id.
        public var pid: Int32
        /// How many of its items were abandoned for `reason`.
        public var items: Int
        /// Why they were not put back.
        public var reason: Reason

        /// A dead consumer's share.
        public init(pid: Int32, items: Int, reason: Reason) {
            self.pid = pid
            self.items = items
            self.reason = reason
        }
    }

    /// How many items were abandoned (exact).
    public var count: Int
    /// Who abandoned them, oldest first, one entry per process and reason. The queue keeps the
    /// last 32 records of deaths: after more, the oldest are missing here, while ``count`` stays
    /// exact.
    public var consumers: [Consumer]

    /// A report.
    public init(count: Int, consumers: [Consumer]) {
        self.count = count
        self.consumers = consumers
    }

    /// A sentence for logs.
    public var description: String {
        let who = consumers.map { "\($0.items) by pid \($0.pid) (\($0.reason))" }
        let listed = consumers.reduce(0) { $0 + $1.items }
        let rest = listed < count ? ["\(count - listed) by consumers no longer listed"] : []
        return "\(count) item\(count == 1 ? "" : "s") abandoned: " + (who + rest).joined(separator: ", ")
    }
}
