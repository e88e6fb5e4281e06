import Dispatch
import Synchronization

/// A FIFO lock that both async tasks and blocking threads can take, and that an owner may hold
/// across suspension points (unlike `Mutex`). Serializes the senders and the receivers of one
/// socket so that frames never interleave.
final class HandoffLock: Sendable {
    private enum Waiter {
        case task(UnsafeContinuation<Void, Never>)
        case thread(DispatchSemaphore)
    }

    private struct State {
        var locked = false
        var waiters: [Waiter] = []
        var head = 0
    }

    private let state = Mutex(State())

    init() {}

    func lock() async {
        if state.withLock({ s in
            if s.locked { return false }
            s.locked = true
            return true
        }) {
            return
        }
        await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
            let acquired = state.withLock { s in
                if s.locked {
                    s.waiters.append(.task(continuation))
                    return false
                }
                s.locked = true
                return true
            }
            if acquired { continuation.resume() }
        }
    }

    func lockBlocking() {
        let semaphore = state.withLock { s -> DispatchSemaphore? in
            if !s.locked {
                s.locked = true
                return nil
            }
            let semaphore = DispatchSemaphore(value: 0)
            s.waiters.append(.thread(semaphore))
            return semaphore
        }
        semaphore?.wait()
    }

    /// Passes ownership straight to the next waiter, if any.
    func unlock() {
        let next = state.withLock { s -> Waiter? in
            guard s.head < s.waiters.count else {
                s.locked = false
                s.waiters.removeAll(keepingCapacity: true)
                s.head = 0
                return nil
            }
            defer { s.head += 1 }
            return s.waiters[s.head]
        }
        switch next {
        case .task(let continuation): continuation.resume()
        case .thread(let semaphore): semaphore.signal()
        case nil: break
        }
    }
}
