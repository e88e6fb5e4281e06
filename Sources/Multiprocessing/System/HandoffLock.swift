import Dispatch
import Synchronization

/// A FIFO lock that both async tasks and blocking threads can take, and that an owner may hold
/// across suspension points (unlike `Mutex`). Serializes the senders and the receivers of one
/// socket so that frames never interleave.
///
/// Waits may have a deadline and async waits end when their task is cancelled, so a timed
/// receive never waits out an untimed one queued ahead of it.
final class HandoffLock: Sendable {
    private enum Waiter {
        case task(UnsafeContinuation<Bool, Never>, id: UInt64)
        case thread(DispatchSemaphore, id: UInt64)
        /// Gave up (deadline or cancellation) before ownership reached it.
        case abandoned

        var id: UInt64? {
            switch self {
            case .task(_, let id), .thread(_, let id): id
            case .abandoned: nil
            }
        }
    }

    private struct State {
        var locked = false
        var waiters: [Waiter] = []
        var head = 0
        var nextID: UInt64 = 1
        /// Async waiters between taking an id and joining the line.
        var arriving: Set<UInt64> = []
        /// Arriving waiters whose deadline or cancellation came before they joined the line.
        var gaveUpEarly: Set<UInt64> = []
    }

    private let state = Mutex(State())

    init() {}

    func lock() async { _ = await lock(until: nil) }

    /// Takes the lock, waiting until `deadline` (forever if `nil`) or until the task is
    /// cancelled. `true` when the lock is now held.
    func lock(until deadline: ContinuousClock.Instant?) async -> Bool {
        if tryLock() { return true }
        if Task.isCancelled { return false }
        let id = state.withLock { s in
            defer { s.nextID += 1 }
            s.arriving.insert(s.nextID)
            return s.nextID
        }
        let timer = deadline.map { deadline in
            Task { [self] in
                do {
                    try await Task.sleep(until: deadline, clock: .continuous)
                    abandon(id)
                } catch {}  // Cancelled: the wait ended first.
            }
        }
        defer { timer?.cancel() }
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Bool, Never>) in
                let outcome = state.withLock { s -> Bool? in
                    s.arriving.remove(id)
                    if s.gaveUpEarly.remove(id) != nil { return false }
                    if s.locked {
                        s.waiters.append(.task(continuation, id: id))
                        return nil
                    }
                    s.locked = true
                    return true
                }
                if let outcome { continuation.resume(returning: outcome) }
            }
        } onCancel: {
            abandon(id)
        }
    }

    func lockBlocking() { _ = lockBlocking(until: nil) }

    /// Takes the lock, blocking the thread until `deadline` (forever if `nil`). `true` when the
    /// lock is now held.
    func lockBlocking(until deadline: ContinuousClock.Instant?) -> Bool {
        let (semaphore, id) = state.withLock { s -> (DispatchSemaphore?, UInt64) in
            if !s.locked {
                s.locked = true
                return (nil, 0)
            }
            let semaphore = DispatchSemaphore(value: 0)
            defer { s.nextID += 1 }
            s.waiters.append(.thread(semaphore, id: s.nextID))
            return (semaphore, s.nextID)
        }
        guard let semaphore else { return true }
        guard let deadline else {
            semaphore.wait()
            return true
        }
        let remaining = deadline - .now
        let nanoseconds = remaining <= .zero ? 0 : Int(min(remaining / .nanoseconds(1), Double(Int.max / 2)))
        if semaphore.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success { return true }
        if removeWaiter(id) != nil { return false }
        // Ownership was handed over between the time-out and the removal: take it.
        semaphore.wait()
        return true
    }

    /// Passes ownership straight to the next waiter that still wants it, if any.
    func unlock() {
        let next = state.withLock { s -> Waiter? in
            while s.head < s.waiters.count {
                let waiter = s.waiters[s.head]
                s.head += 1
                if case .abandoned = waiter { continue }
                return waiter
            }
            s.locked = false
            s.waiters.removeAll(keepingCapacity: true)
            s.head = 0
            return nil
        }
        switch next {
        case .task(let continuation, _): continuation.resume(returning: true)
        case .thread(let semaphore, _): semaphore.signal()
        case .abandoned, nil: break
        }
    }

    private func tryLock() -> Bool {
        state.withLock { s in
            if s.locked { return false }
            s.locked = true
            return true
        }
    }

    /// An async waiter gives up: resumed with `false` unless ownership already reached it.
    private func abandon(_ id: UInt64) {
        let early = state.withLock { s in
            guard s.arriving.contains(id) else { return false }
            s.gaveUpEarly.insert(id)
            return true
        }
        if early { return }
        if case .task(let continuation, _) = removeWaiter(id) { continuation.resume(returning: false) }
    }

    /// Takes a still-queued waiter out of the line, leaving a gap `unlock` skips.
    private func removeWaiter(_ id: UInt64) -> Waiter? {
        state.withLock { s in
            guard let index = s.waiters[s.head...].firstIndex(where: { $0.id == id }) else { return nil }
            let waiter = s.waiters[index]
            s.waiters[index] = .abandoned
            return waiter
        }
    }
}
