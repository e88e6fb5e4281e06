/// Why a shared-memory segment could not be created, attached, mapped or unlinked.
public enum SharedMemoryError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A segment name must be 1–250 characters, with no `/` after an optional leading one.
    case invalidName(String)
    /// A named segment with this name exists already.
    case alreadyExists(name: String)
    /// No named segment has this name (never created, or unlinked).
    case notFound(name: String)
    /// A size of zero, a negative size, or a segment smaller than the handle describes.
    case invalidSize(Int)
    /// Only the process that created a named segment unlinks it: an attached process never
    /// removes a segment others may still be using.
    case notCreator(name: String)
    /// A shared object's memory does not hold what its handle describes (a corrupt handle).
    case layoutMismatch(String)
    /// A system call failed.
    case system(SystemError)
    /// The resource tracker, which unlinks ``SharedMemory/NameLifetime/untilReleased`` names this
    /// process leaves behind, could not be started: the copy of this binary that starts it
    /// ended with `status` instead of handing it over (it could not fork). Nothing was
    /// created; a later ``SharedMemory/create(name:size:lifetime:)`` tries again.
    case resourceTrackerNotStarted(ExitStatus)
    /// The resource tracker stopped taking registrations (it exited, or did not read them for
    /// a second) right after it was started; the segment was unlinked again. A later
    /// ``SharedMemory/create(name:size:lifetime:)`` starts a new tracker.
    case resourceTrackerUnreachable

    /// A sentence for logs.
    public var description: String {
        switch self {
        case .invalidName(let name): "invalid shared memory name \"\(name)\""
        case .alreadyExists(let name): "shared memory \"\(name)\" already exists"
        case .notFound(let name): "no shared memory named \"\(name)\""
        case .invalidSize(let size): "invalid shared memory size \(size)"
        case .notCreator(let name):
            "shared memory \"\(name)\" can only be unlinked by the process that created it"
        case .layoutMismatch(let what): "shared memory layout mismatch: \(what)"
        case .system(let error): "shared memory: \(error)"
        case .resourceTrackerNotStarted(let status):
            "shared memory: the resource tracker could not be started (its launcher \(status))"
        case .resourceTrackerUnreachable:
            "shared memory: the resource tracker stopped taking registrations right after it started"
        }
    }
}
