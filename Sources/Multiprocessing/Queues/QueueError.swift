/// Why a queue operation did not complete.
///
/// The non-waiting forms report CPython's `queue.Full` and `queue.Empty` as ``full`` and
/// ``empty``; the waiting forms report ``timedOut`` when their timeout passes.
public enum QueueError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The queue holds its capacity of items, or its ring has no room for this one
    /// (`putNowait`; CPython's `queue.Full`).
    case full
    /// The queue holds no item (`getNowait`; CPython's `queue.Empty`).
    case empty
    /// The queue was closed: no more items may be put, and every item put before has been
    /// taken.
    case closed
    /// The timeout passed before an item (or room for one) became available.
    case timedOut
    /// The waiting task was cancelled; nothing was put or taken.
    case cancelled
    /// ``JoinableQueue/taskDone()`` was called by a process that holds no item: it took none, or
    /// has marked every item it took done (so also when called more times than items were put).
    case taskDoneTooManyTimes
    /// ``JoinableQueue/join(timeout:)`` ended with items not done: consumers took them and died
    /// before marking them done, and they were counted as finished instead of being put back
    /// (see ``AbandonedItemPolicy``). Each handle reports each such item once.
    case abandoned(AbandonedItems)
    /// An item could not be encoded, or the item taken could not be decoded as `Element` (that
    /// item is dropped; the queue carries on).
    case codec(CodecError)
    /// The queue's shared memory could not be made or mapped.
    case memory(SharedMemoryError)
    /// A system call failed (making a large item's memory, passing its descriptor).
    case system(SystemError)
    /// The capacity or ring size asked for is not usable.
    case invalidConfiguration(String)
    /// The queue's shared memory does not hold a well-formed queue (it was overwritten).
    case corrupted(String)

    /// A sentence for logs.
    public var description: String {
        switch self {
        case .full: "the queue is full"
        case .empty: "the queue is empty"
        case .closed: "the queue is closed"
        case .timedOut: "timed out"
        case .cancelled: "cancelled"
        case .taskDoneTooManyTimes: "taskDone() called by a process that holds no item taken from the queue"
        case .abandoned(let items): "join: \(items)"
        case .codec(let error): "queue item: \(error)"
        case .memory(let error): "\(error)"
        case .system(let error): "queue: \(error)"
        case .invalidConfiguration(let why): "invalid queue configuration: \(why)"
        case .corrupted(let why): "corrupted queue: \(why)"
        }
    }
}
