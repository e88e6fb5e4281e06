import Synchronization

/// The library's own timer: one thread per process that runs short actions at deadlines on the
/// monotonic clock (the time-outs of async waits).
///
/// Not `Task.sleep`: libdispatch traps when the first Dispatch timer of a process is armed at
/// the descriptor limit, and the library promises a typed error there. The thread starts on the
/// first deadline and sleeps on a private futex until the earliest one; actions must not block.
final class WaitTimer: Sendable {
    /// The process's timer (a `.fork` child starts with a fresh one: see ``AfterFork``).
    nonisolated(unsafe) private(set) static var shared = WaitTimer()

    /// In a child made by `fork`: the timer thread did not survive, and its lock may be held.
    static func resetAfterFork() { shared = WaitTimer() }

    /// In the parent before a `.fork`, once: makes what ``resetAfterFork()`` makes (see
    /// ``AfterFork``). The timer's word is never freed: one of 4 bytes.
    static func prepareForFork() {
        _ = shared
        _ = WaitTimer()
    }

    /// Suspends the calling task for `duration` (not cancellable; no Dispatch timer, no thread
    /// held while it sleeps).
    static func sleep(for duration: Duration) async {
        let deadline = WaitDeadline(after: duration)
        if deadline.isNever || deadline.hasPassed { return }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            shared.schedule(at: deadline) { continuation.resume() }
        }
    }

    /// Names a scheduled action, to cancel it.
    struct Token: Sendable, Hashable {
        fileprivate let id: UInt64
    }

    private struct Entry {
        let deadline: Int64
        let id: UInt64
        let action: @Sendable () -> Void
    }

    private struct State {
        /// Sorted by deadline, latest first (the next one is popped off the end).
        var entries: [Entry] = []
        var nextID: UInt64 = 1
        var started = false
        /// The thread could not be started: actions run on a task instead.
        var failed = false
    }

    private let state = Mutex(State())
    /// Bumped (and woken) whenever an earlier deadline arrives.
    private let bell: FutexWord

    private init() {
        let word = UnsafeMutableRawPointer.allocate(byteCount: 4, alignment: 4)
        word.storeBytes(of: 0, as: UInt32.self)
        bell = FutexWord(word)  // Lives as long as the process, like the thread.
    }

    /// Runs `action` on the timer thread once `deadline` passes (soon, if it already has), unless
    /// cancelled first. `nil` for no deadline: nothing is scheduled.
    @discardableResult
    func schedule(at deadline: WaitDeadline, _ action: @escaping @Sendable () -> Void) -> Token? {
        guard !deadline.isNever else { return nil }
        let (token, plan) = state.withLock { s -> (Token, Plan) in
            let id = s.nextID
            s.nextID += 1
            let entry = Entry(deadline: deadline.nanoseconds, id: id, action: action)
            // Binary search for the place that keeps the array sorted latest first.
            var low = 0
            var high = s.entries.count
            while low < high {
                let mid = (low + high) / 2
                if s.entries[mid].deadline > entry.deadline { low = mid + 1 } else { high = mid }
            }
            s.entries.insert(entry, at: low)
            let plan: Plan
            if s.failed {
                plan = .fallback
            } else if !s.started {
                s.started = true
                plan = .start
            } else {
                plan = low == s.entries.count - 1 ? .ring : .none
            }
            return (Token(id: id), plan)
        }
        switch plan {
        case .none: break
        case .ring:
            _ = bell.add(1)
            bell.wake()
        case .start:
            do {
                try OSThread.detach(name: "mp-timer") { [self] in run() }
            } catch {
                state.withLock { $0.failed = true }
                fallback(deadline)
            }
        case .fallback:
            fallback(deadline)
        }
        return token
    }

    private enum Plan { case none, ring, start, fallback }

    /// Cancels a scheduled action; `true` if it had not run yet (it never will).
    @discardableResult
    func cancel(_ token: Token?) -> Bool {
        guard let token else { return false }
        return state.withLock { s in
            guard let index = s.entries.lastIndex(where: { $0.id == token.id }) else { return false }
            s.entries.remove(at: index)
            return true
        }
    }

    /// The actions whose deadline has passed, and the next deadline (or -1).
    private func due() -> ([@Sendable () -> Void], Int64) {
        let now = WaitDeadline.now
        return state.withLock { s in
            var actions: [@Sendable () -> Void] = []
            while let last = s.entries.last, last.deadline <= now {
                actions.append(last.action)
                s.entries.removeLast()
            }
            return (actions, s.entries.last?.deadline ?? -1)
        }
    }

    private func run() -> Never {
        while true {
            let seen = bell.load()
            let (actions, next) = due()
            for action in actions { action() }
            if actions.isEmpty {
                _ = bell.wait(ifEqualTo: seen, until: WaitDeadline(nanoseconds: next))
            }
        }
    }

    /// No thread could be started: a task sleeps until `deadline` and runs what is due then.
    private func fallback(_ deadline: WaitDeadline) {
        Task { [self] in
            if let remaining = deadline.remaining { try? await Task.sleep(for: remaining) }
            for action in due().0 { action() }
        }
    }
}
