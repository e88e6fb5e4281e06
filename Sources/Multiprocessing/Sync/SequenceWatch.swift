import CMultiprocessing

/// This process's tasks waiting on one ``ConditionSequence`` (a condition's, a barrier's): they
/// wait suspended in a ``WaiterQueue`` while a single thread sleeps in the kernel for all of
/// them, so a thousand waiting tasks cost one thread, not a thousand.
///
/// Unlike a lock's waiters they cannot simply queue behind one sleeper: each waits for the
/// sequence to move on from where *it* started. The watching thread wakes whenever the sequence
/// moves and hands the news to the waiters that started earlier — every one of them for a
/// barrier, one per wake-up owed for a condition (so `notify(1)` ends one task's wait).
final class SequenceWatch: Sendable {
    private struct State {
        /// The process whose thread is watching (it stops once nobody waits), or 0. A pid, so
        /// that a `.fork` child, where the thread did not survive, starts one of its own.
        var watcher: Int32 = 0
    }

    /// `true`: notified; `false`: no watching thread could be started (wait on a thread of
    /// your own).
    private let queue = WaiterQueue<State, Bool>(State())
    private let sequence: ConditionSequence
    private let counted: Bool

    /// How long the watching thread sleeps before it looks whether anyone still waits.
    private static let recheck = Duration.milliseconds(50)

    init(_ sequence: ConditionSequence, counted: Bool) {
        self.sequence = sequence
        self.counted = counted
    }

    /// Waits, suspended, until the sequence moves on from `start` (and a wake-up owed is taken,
    /// for a condition), `deadline` passes or the task is cancelled. `.acquired` stands for
    /// notified. The caller has entered the sequence's sleepers.
    func wait(from start: UInt32, until deadline: WaitDeadline) async -> LockOutcome {
        let tag = UInt64(start) | (1 << 32)
        let outcome = await queue.wait(until: deadline, tag: tag) { [self] l in
            if sequence.isNotified(since: start, counted: counted) { return true }
            let me = mp_current_pid()
            if l.state.watcher != me {
                // Under the lock, so the thread cannot look before this waiter is in line.
                guard WaitThreads.start({ [self] in watch() }) else { return false }
                l.state.watcher = me
            }
            return nil
        }
        switch outcome {
        case .resumed(true): return .acquired
        case .resumed(false):
            return await WaitThreads.run(
                { [sequence, counted] cancellation in
                    sequence.sleep(from: start, until: deadline, cancellation: cancellation, counted: counted)
                }, wake: { [sequence] in sequence.word.wakeAll() })
        case .timedOut: return .timedOut
        case .cancelled: return .cancelled
        }
    }

    /// The watching thread: hands out each move of the sequence, sleeps until the next, and
    /// stops when nobody waits.
    private func watch() {
        while true {
            let current = sequence.word.load()
            let waiting = queue.withLock { l -> Bool in
                let moved = { (tag: UInt64) in UInt32(truncatingIfNeeded: tag) != current }
                if counted {
                    while sequence.takeWakeUp() {
                        if !l.resumeFirst(true, where: moved) {
                            sequence.returnWakeUp()
                            break
                        }
                    }
                } else {
                    l.resumeAll(true, where: moved)
                }
                if l.waiterCount == 0 { l.state.watcher = 0 }
                return l.waiterCount > 0
            }
            guard waiting else { return }
            _ = sequence.word.wait(ifEqualTo: current, until: WaitDeadline(after: Self.recheck))
        }
    }
}
