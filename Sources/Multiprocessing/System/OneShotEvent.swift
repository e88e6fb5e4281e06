/// Something that happens once (a child's exit, a result's arrival) and that any number of
/// tasks can wait for, each giving up when cancelled or after a time-out.
final class OneShotEvent: Sendable {
    /// `true` once fired.
    private let queue = WaiterQueue<Bool, Void>(false)

    init() {}

    var hasFired: Bool { queue.withLock { $0.state } }

    /// Marks the event as happened and wakes every waiter. Later calls do nothing.
    func fire() {
        queue.withLock { l in
            guard !l.state else { return }
            l.state = true
            l.resumeAll(())
        }
    }

    /// Returns once the event has happened, or early if the waiting task is cancelled.
    func wait() async {
        _ = await queue.wait { $0.state ? () : nil }
    }

    /// Like ``wait()``, giving up after `timeout`.
    func wait(timeout: Duration) async {
        _ = await queue.wait(until: WaitDeadline(after: timeout)) { $0.state ? () : nil }
    }
}
