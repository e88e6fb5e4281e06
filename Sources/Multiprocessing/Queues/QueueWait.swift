/// How long a queue operation may wait for an item or for room.
struct QueueWait: Sendable {
    /// `false`: report ``QueueError/full`` or ``QueueError/empty`` at once.
    var mayWait: Bool
    var deadline: WaitDeadline
    var cancellation: WaitCancellation?
    /// `false`: not even for the queue's own lock (held briefly, but by a process that may be
    /// decoding a large item, or dead): report ``QueueError/full`` or ``QueueError/empty`` as if
    /// the operation had to wait. For an `async` caller's first attempt, on a cooperative thread.
    var mayWaitForLock = true

    /// The non-waiting forms.
    static let immediately = QueueWait(mayWait: false, deadline: .never, cancellation: nil)

    /// An attempt that never sleeps, not even for the lock; the caller waits elsewhere if it fails.
    static let attempt = QueueWait(mayWait: false, deadline: .never, cancellation: nil, mayWaitForLock: false)

    /// Waits until `deadline`, checking `cancellation` as it goes.
    static func until(_ deadline: WaitDeadline, _ cancellation: WaitCancellation? = nil) -> QueueWait {
        QueueWait(mayWait: true, deadline: deadline, cancellation: cancellation)
    }
}
