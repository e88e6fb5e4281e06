/// What a ``JoinableQueue`` does with the items a consumer took and never marked done because its
/// process died (chosen when the queue is made; CPython's `join` waits for them forever).
///
/// ```swift
/// let jobs = try JoinableQueue<Job>(capacity: 100, unfinishedItemsOfDeadConsumers: .requeue)
/// ```
///
/// - ``report``: each such item counts as finished, and ``JoinableQueue/join(timeout:)`` throws
///   ``QueueError/abandoned(_:)`` naming the dead consumers and how many items each left: the
///   work happened at most once, and the caller knows what was lost.
/// - ``requeue``: each such item goes back to the queue, ahead of the others, for another consumer
///   to take: the work happens at least once (a consumer may have done part of it before dying),
///   so it must be safe to repeat. An item that cannot be put back is reported as with
///   ``report``, with the reason (see ``AbandonedItems/Reason``).
public struct AbandonedItemPolicy: Sendable, Hashable, CustomStringConvertible {
    /// Whether items are put back.
    let requeues: Bool
    /// With `requeues`: how many consumers may take one item before it is reported instead.
    let maxDeliveries: Int

    /// Count the items as finished and report them: ``JoinableQueue/join(timeout:)`` throws
    /// ``QueueError/abandoned(_:)``. The default.
    public static let report = AbandonedItemPolicy(requeues: false, maxDeliveries: 1)

    /// Put the items back for other consumers, each at most 3 times in all (an item whose every
    /// consumer dies is reported after its third delivery instead of killing consumers forever).
    public static let requeue = AbandonedItemPolicy(requeues: true, maxDeliveries: 3)

    /// Put the items back for other consumers, each delivered at most `maxDeliveries` times in
    /// all (at least 1; 1 puts nothing back).
    public static func requeue(maxDeliveries: Int) -> AbandonedItemPolicy {
        AbandonedItemPolicy(requeues: true, maxDeliveries: maxDeliveries)
    }

    /// A phrase for logs.
    public var description: String {
        requeues ? "requeue (at most \(maxDeliveries) deliveries)" : "report"
    }
}
