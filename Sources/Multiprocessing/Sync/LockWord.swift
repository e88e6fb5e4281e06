import CMultiprocessing
import Synchronization

/// How an acquisition ended.
enum LockOutcome: Sendable, Equatable {
    case acquired
    /// Acquired from a holder that died holding it (its pid).
    case ownerDied(Int32)
    case timedOut
    case cancelled
}

/// A process-shared mutex in one futex word: 0 when free, otherwise the holder's pid (so a
/// waiter can tell that the holder died) with the top bit set while someone may be sleeping.
///
/// A waiter checks whether the holder still lives before it first sleeps (so a holder that died
/// before the waiter came costs nothing), then sleeps in slices and checks between them: a holder
/// killed with SIGKILL while others wait costs them one slice, not a deadlock.
struct LockWord: Sendable {
    static let waitersBit: UInt32 = 1 << 31
    static let ownerMask: UInt32 = (1 << 30) - 1
    /// How often a sleeping waiter checks that the holder is alive.
    static let livenessInterval: Int64 = 50_000_000
    static let spinCount = 100
    /// How many times a waiter of this process slept a whole liveness slice before checking the
    /// holder (for tests: a waiter that arrives after the holder died must not sleep one).
    static let livenessSlices = Atomic<Int>(0)

    let word: FutexWord

    init(_ address: UnsafeMutableRawPointer) { word = FutexWord(address) }

    static var currentOwner: UInt32 { UInt32(bitPattern: mp_current_pid()) & ownerMask }

    /// The holder's pid, or 0.
    var owner: Int32 { Int32(bitPattern: word.load() & Self.ownerMask) }

    /// Takes the word if it is free; takes it over if its holder is dead.
    @inline(__always) func tryLock() -> LockOutcome? {
        let me = Self.currentOwner
        let (done, found) = word.compareExchange(0, me)
        if done { return .acquired }
        return takeOverIfDead(found, me: me)
    }

    /// Acquires, sleeping as needed until `deadline`.
    func lock(until deadline: WaitDeadline, cancellation: WaitCancellation? = nil) -> LockOutcome {
        let me = Self.currentOwner
        if let outcome = fastLock(me) { return outcome }
        return sleepingLock(me, until: deadline, cancellation: cancellation)
    }

    /// The part of an acquisition that never sleeps and makes no system call: one attempt and a
    /// short spin. Whether the holder is dead is left to ``sleepingLock(_:until:cancellation:)``.
    @inline(__always) func fastLock(_ me: UInt32 = currentOwner) -> LockOutcome? {
        if word.compareExchange(0, me).exchanged { return .acquired }
        return spin(me)
    }

    /// The fast part of an acquisition: an attempt and a short spin, never sleeping.
    func spin(_ me: UInt32 = currentOwner) -> LockOutcome? {
        for _ in 0..<Self.spinCount {
            mp_spin_pause()
            if word.load() == 0, word.compareExchange(0, me).exchanged { return .acquired }
        }
        return nil
    }

    func sleepingLock(_ me: UInt32, until deadline: WaitDeadline, cancellation: WaitCancellation?)
        -> LockOutcome
    {
        var livenessCheck = WaitDeadline.now + Self.livenessInterval
        var arrived = true
        while true {
            if cancellation?.isCancelled == true { return .cancelled }
            var value = word.load()
            if value == 0 {
                // Taken with the waiters bit: others may still be asleep behind us.
                if word.compareExchange(0, me | Self.waitersBit).exchanged { return .acquired }
                continue
            }
            if arrived {
                // Before the first sleep: a holder that died (and was perhaps reaped) before we
                // came is taken over now, not after a slice. Same check as between slices.
                arrived = false
                if let outcome = takeOverIfDead(value, me: me) { return outcome }
                continue
            }
            if value & Self.waitersBit == 0 {
                guard word.compareExchange(value, value | Self.waitersBit).exchanged else { continue }
                value |= Self.waitersBit
            }
            let slice = min(deadline, WaitDeadline(nanoseconds: livenessCheck))
            if word.wait(ifEqualTo: value, until: slice) == .timedOut {
                let now = WaitDeadline.now
                if now >= livenessCheck {
                    livenessCheck = now + Self.livenessInterval
                    Self.livenessSlices.add(1, ordering: .relaxed)
                    if let outcome = takeOverIfDead(word.load(), me: me) { return outcome }
                }
                if deadline.hasPassed {
                    return takeOverIfDead(word.load(), me: me) ?? .timedOut
                }
            }
        }
    }

    /// If `found`'s holder is dead, takes the word over from it.
    private func takeOverIfDead(_ found: UInt32, me: UInt32) -> LockOutcome? {
        let holder = Int32(bitPattern: found & Self.ownerMask)
        guard holder != 0, holder != Int32(bitPattern: me), ProcessStatus.hasEnded(holder) else {
            return nil
        }
        // Keep the waiters bit: others may be asleep behind the dead holder.
        guard word.compareExchange(found, me | Self.waitersBit).exchanged else { return nil }
        return .ownerDied(holder)
    }

    /// Releases; returns false if the word was free.
    @discardableResult @inline(__always) func unlock() -> Bool {
        let previous = word.exchange(0)
        if previous & Self.waitersBit != 0 { word.wake(1) }
        return previous != 0
    }
}
