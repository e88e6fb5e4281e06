/// Why a process-shared synchronization operation did not complete.
public enum SyncError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The timeout passed before the primitive became available.
    case timedOut
    /// The task waiting was cancelled; nothing was acquired.
    case cancelled
    /// `release` of a lock that is not held.
    case notLocked
    /// `release` of a reentrant lock by someone other than its owner.
    case notOwner
    /// A bounded semaphore was released more times than it was acquired.
    case overReleased(limit: Int)
    /// The barrier was broken (a party timed out, was cancelled, `abort` or `reset` was called,
    /// or its action threw) while this party was waiting or before it arrived.
    case brokenBarrier
    /// The primitive's shared memory could not be made or mapped.
    case memory(SharedMemoryError)

    /// A sentence for logs.
    public var description: String {
        switch self {
        case .timedOut: "timed out"
        case .cancelled: "cancelled"
        case .notLocked: "release of a lock that is not held"
        case .notOwner: "release of a reentrant lock by a thread or task that does not own it"
        case .overReleased(let limit): "bounded semaphore released more than its limit of \(limit)"
        case .brokenBarrier: "the barrier is broken"
        case .memory(let error): "\(error)"
        }
    }
}
