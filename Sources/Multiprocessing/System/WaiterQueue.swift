import Dispatch
import Synchronization

/// How a wait in a ``WaiterQueue`` ended.
enum WaiterOutcome<Value: Sendable>: Sendable {
    /// Handed `Value` by ``WaiterQueue/Locked/resumeFirst(_:)`` or the wait's own attempt.
    case resumed(Value)
    /// The deadline passed first.
    case timedOut
    /// The waiting task was cancelled first.
    case cancelled

    /// The value, or `nil` when the wait gave up.
    var value: Value? {
        if case .resumed(let value) = self { return value }
        return nil
    }
}

/// The one waiter queue of the library: some state behind a lock, and a FIFO line of tasks and
/// threads waiting for it to change, each with an optional deadline and (for tasks) giving up
/// when cancelled.
///
/// A waiter is resumed exactly once: by whoever holds the lock and hands it a value, by its
/// deadline (on ``WaitTimer``'s thread, not `Task.sleep`), or by cancellation — whichever takes
/// it out of the line first, under the lock. Handing out and joining the line happen under the
/// same lock as the state they depend on, so no wake-up is ever lost.
final class WaiterQueue<State: Sendable, Value: Sendable>: Sendable {
    fileprivate enum Waiter {
        case task(UnsafeContinuation<WaiterOutcome<Value>, Never>, timer: WaitTimer.Token?)
        case thread(ThreadWaiter)
    }

    /// A blocking waiter: the value it was handed, and the semaphore it sleeps on.
    fileprivate final class ThreadWaiter: @unchecked Sendable {
        let semaphore = DispatchSemaphore(value: 0)
        var value: Value?  // Written before the signal, read after the wait.
    }

    /// The state and the line, as seen under the lock.
    struct Locked {
        /// The caller's state.
        var state: State
        fileprivate var line: [UInt64] = []
        fileprivate var head = 0
        fileprivate var waiters: [UInt64: Waiter] = [:]
        /// What each waiter waits for, when it said (see ``resumeFirst(_:where:)``).
        fileprivate var tags: [UInt64: UInt64] = [:]
        fileprivate var nextID: UInt64 = 1
        fileprivate var resumptions: [(Waiter, WaiterOutcome<Value>)] = []

        /// How many wait in line.
        var waiterCount: Int { waiters.count }

        /// Hands `value` to the longest-waiting waiter (resumed once the lock is released);
        /// `false` when nobody waits.
        @discardableResult
        mutating func resumeFirst(_ value: Value) -> Bool {
            while head < line.count {
                let id = line[head]
                head += 1
                if let waiter = waiters.removeValue(forKey: id) {
                    tags.removeValue(forKey: id)
                    compact()
                    resumptions.append((waiter, .resumed(value)))
                    return true
                }
            }
            compact()
            return false
        }

        /// Hands `value` to every waiter.
        mutating func resumeAll(_ value: Value) {
            while resumeFirst(value) {}
        }

        /// Hands `value` to the longest-waiting waiter whose tag (`0` if it gave none) passes
        /// `test`; `false` when there is none. The others keep their places.
        @discardableResult
        mutating func resumeFirst(_ value: Value, where test: (UInt64) -> Bool) -> Bool {
            while head < line.count, waiters[line[head]] == nil { head += 1 }
            for index in head..<line.count {
                let id = line[index]
                guard waiters[id] != nil, test(tags[id] ?? 0) else { continue }
                leave(id, .resumed(value))
                return true
            }
            return false
        }

        /// Hands `value` to every waiter whose tag passes `test`.
        mutating func resumeAll(_ value: Value, where test: (UInt64) -> Bool) {
            while head < line.count, waiters[line[head]] == nil { head += 1 }
            for id in line[head...] where waiters[id] != nil && test(tags[id] ?? 0) {
                leave(id, .resumed(value))
            }
        }

        fileprivate mutating func join(_ waiter: Waiter, tag: UInt64 = 0) -> UInt64 {
            let id = nextID
            nextID += 1
            line.append(id)
            waiters[id] = waiter
            if tag != 0 { tags[id] = tag }
            return id
        }

        fileprivate mutating func leave(_ id: UInt64, _ outcome: WaiterOutcome<Value>) {
            guard let waiter = waiters.removeValue(forKey: id) else { return }
            tags.removeValue(forKey: id)
            resumptions.append((waiter, outcome))
            compact()
        }

        private mutating func compact() {
            if waiters.isEmpty {
                line.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 64 && head * 2 > line.count {
                line.removeFirst(head)
                head = 0
            }
        }
    }

    private let locked: Mutex<Locked>

    /// A task waiter's place in line, for its cancellation handler (0 until it joined).
    private final class JoinedID: Sendable {
        let value = Atomic<UInt64>(0)
    }

    init(_ state: State) {
        locked = Mutex(Locked(state: state))
    }

    /// Runs `body` under the lock; waiters it resumed run once the lock is released.
    func withLock<R, E: Error>(_ body: (inout Locked) throws(E) -> R) throws(E) -> R {
        var resumptions: [(Waiter, WaiterOutcome<Value>)] = []
        defer { Self.resume(resumptions) }
        return try locked.withLock { l throws(E) in
            defer {
                resumptions = l.resumptions
                l.resumptions = []
            }
            return try body(&l)
        }
    }

    /// Runs `attempt` under the lock: its value ends the wait at once; `nil` joins the line
    /// (tagged with `tag`), until a value is handed over, `deadline` passes or (if
    /// `cancellable`) the task is cancelled.
    func wait(
        until deadline: WaitDeadline = .never, tag: UInt64 = 0, cancellable: Bool = true,
        _ attempt: (inout Locked) -> Value?
    ) async -> WaiterOutcome<Value> {
        guard cancellable else {
            return await withUnsafeContinuation { continuation in
                _ = join(continuation, deadline, tag, attempt, nil)
            }
        }
        if Task.isCancelled { return .cancelled }
        let id = JoinedID()
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<WaiterOutcome<Value>, Never>) in
                let joined = join(continuation, deadline, tag, attempt, id)
                // Checked after joining, so a cancellation that raced us is never missed.
                if let joined, Task.isCancelled { withLock { $0.leave(joined, .cancelled) } }
            }
        } onCancel: {
            let joined = id.value.load(ordering: .acquiring)
            if joined != 0 { withLock { $0.leave(joined, .cancelled) } }
        }
    }

    /// Resumes `continuation` with what `attempt` finds, or puts it in line (its place
    /// published in `id`); returns the place.
    private func join(
        _ continuation: UnsafeContinuation<WaiterOutcome<Value>, Never>, _ deadline: WaitDeadline,
        _ tag: UInt64, _ attempt: (inout Locked) -> Value?, _ id: JoinedID?
    ) -> UInt64? {
        withLock { l -> UInt64? in
            if let value = attempt(&l) {
                l.resumptions.append((.task(continuation, timer: nil), .resumed(value)))
                return nil
            }
            if deadline.hasPassed {
                l.resumptions.append((.task(continuation, timer: nil), .timedOut))
                return nil
            }
            let me = l.join(.task(continuation, timer: nil), tag: tag)
            let timer = WaitTimer.shared.schedule(at: deadline) { [self] in
                withLock { $0.leave(me, .timedOut) }
            }
            if let timer { l.waiters[me] = .task(continuation, timer: timer) }
            id?.value.store(me, ordering: .releasing)
            return me
        }
    }

    /// Like ``wait(until:_:)``, blocking the calling thread instead (never cancelled).
    func waitBlocking(until deadline: WaitDeadline = .never, _ attempt: (inout Locked) -> Value?)
        -> WaiterOutcome<Value>
    {
        let waiter = ThreadWaiter()
        let joined = locked.withLock { l -> (UInt64?, WaiterOutcome<Value>) in
            if let value = attempt(&l) { return (nil, .resumed(value)) }
            if deadline.hasPassed { return (nil, .timedOut) }
            return (l.join(.thread(waiter)), .timedOut)
        }
        guard let id = joined.0 else { return joined.1 }
        if let remaining = deadline.remaining {
            let nanoseconds = Int(min(remaining / .nanoseconds(1), Double(Int.max / 2)))
            if waiter.semaphore.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .timedOut {
                let left = locked.withLock { l in l.waiters.removeValue(forKey: id) != nil }
                if left { return .timedOut }
                waiter.semaphore.wait()  // Handed a value between the time-out and the removal.
            }
        } else {
            waiter.semaphore.wait()
        }
        return waiter.value.map { .resumed($0) } ?? .timedOut
    }

    private static func resume(_ resumptions: [(Waiter, WaiterOutcome<Value>)]) {
        for (waiter, outcome) in resumptions {
            switch waiter {
            case .task(let continuation, let timer):
                WaitTimer.shared.cancel(timer)
                continuation.resume(returning: outcome)
            case .thread(let waiter):
                if case .resumed(let value) = outcome { waiter.value = value }
                waiter.semaphore.signal()
            }
        }
    }
}
