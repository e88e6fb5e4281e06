import Synchronization

/// A FIFO lock that both async tasks and blocking threads can take, and that an owner may hold
/// across suspension points (unlike `Mutex`). Serializes the senders and the receivers of one
/// socket so that frames never interleave, and the in-process waiters of a process-shared
/// primitive so that only one of them sleeps in the kernel.
///
/// Waits may have a deadline and async waits end when their task is cancelled, so a timed
/// receive never waits out an untimed one queued ahead of it.
final class HandoffLock: Sendable {
    /// `true` while held; ownership passes straight to the next waiter on unlock.
    private let queue = WaiterQueue<Bool, Void>(false)

    init() {}

    func lock() async { _ = await lock(until: .never) }

    /// Takes the lock, waiting until `deadline` (forever if `nil`) or until the task is
    /// cancelled. `true` when the lock is now held.
    func lock(until deadline: ContinuousClock.Instant?) async -> Bool {
        await lock(until: WaitDeadline(after: deadline.map { $0 - .now }))
    }

    /// Takes the lock, waiting until `deadline` or until the task is cancelled. `true` when the
    /// lock is now held.
    func lock(until deadline: WaitDeadline) async -> Bool {
        await queue.wait(until: deadline, Self.take).value != nil
    }

    /// Takes the lock however long it takes, even if the task is cancelled.
    func lockUncancellable() async { _ = await queue.wait(cancellable: false, Self.take) }

    func lockBlocking() { _ = lockBlocking(until: nil) }

    /// Takes the lock, blocking the thread until `deadline` (forever if `nil`). `true` when the
    /// lock is now held.
    func lockBlocking(until deadline: ContinuousClock.Instant?) -> Bool {
        queue.waitBlocking(until: WaitDeadline(after: deadline.map { $0 - .now }), Self.take).value != nil
    }

    /// Takes the lock if it is free, never waiting.
    func tryLock() -> Bool { queue.withLock { Self.take(&$0) } != nil }

    /// Passes ownership straight to the next waiter that still wants it, if any.
    func unlock() {
        queue.withLock { l in
            if !l.resumeFirst(()) { l.state = false }
        }
    }

    private static func take(_ l: inout WaiterQueue<Bool, Void>.Locked) -> Void? {
        if l.state { return nil }
        l.state = true
        return ()
    }
}
