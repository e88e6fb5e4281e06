import Synchronization

/// Set when the task behind an async wait is cancelled; the blocking loop checks it each time
/// it wakes.
final class WaitCancellation: Sendable {
    private let flag = Atomic<Bool>(false)
    init() {}
    var isCancelled: Bool { flag.load(ordering: .acquiring) }
    func cancel() { flag.store(true, ordering: .releasing) }
}
