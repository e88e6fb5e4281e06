import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// Waiting for an item or for room: a short spin, then futex sleeps in slices so that deadlines,
// cancellation and dead lock holders are noticed.
extension QueueCore {
    /// Why a waiting operation must stop now, if it must.
    static func stop(_ wait: QueueWait) -> QueueError? {
        if wait.cancellation?.isCancelled == true { return .cancelled }
        if wait.deadline.hasPassed { return .timedOut }
        return nil
    }

    static func unregister(_ waiters: FutexWord) {
        // Saturating: a registration presumed dead may already have been dropped.
        let count = waiters.load()
        if count > 0 { waiters.store(count - 1) }
    }

    /// Under the lock, after a change others may sleep on: bumps the futex word if anyone is
    /// registered and says whether to wake them (after unlocking). A registration that wakes
    /// have kept missing is dropped (its process died asleep).
    @inline(__always) func signal(_ waitersOffset: Int, _ sequence: FutexWord, _ fruitlessOffset: Int)
        -> Bool
    {
        let waiters = word(waitersOffset)
        guard waiters.load() > 0 else { return false }
        let fruitless = word(fruitlessOffset)
        if fruitless.load() >= Self.fruitlessLimit {
            fruitless.store(0)
            Self.unregister(waiters)
        }
        _ = sequence.add(1)
        return true
    }

    func wakeSleepers(_ sequence: FutexWord, all: Bool, _ fruitlessOffset: Int) {
        let woken = all ? sequence.wakeAll() : sequence.wake(1)
        let fruitless = word(fruitlessOffset)
        if woken == 0 {
            _ = fruitless.add(1)
        } else if fruitless.load() != 0 {
            fruitless.store(0)
        }
    }

    /// Spins (a few microseconds at most) until `done`.
    @inline(__always) func spin(_ done: () -> Bool) {
        let limit = WaitDeadline.now + Self.spinNanoseconds
        var round = 0
        while !done() {
            mp_spin_pause()
            round &+= 1
            if round & 31 == 0 && WaitDeadline.now >= limit { return }
        }
    }

    /// Sleeps while `sequence` holds `expected`, for one slice at most.
    /// Sleeps while `sequence` holds `expected`, for one slice at most (`slice` at most, if
    /// given: a waiter that must look at something no one will wake it for).
    func sleep(
        on sequence: FutexWord, ifEqualTo expected: UInt32, _ wait: QueueWait, slice: Int64? = nil
    ) {
        if wait.cancellation?.isCancelled == true { return }
        let longest = wait.cancellation == nil ? Self.sleepSlice : Self.cancellationSlice
        let length = slice.map { min($0, longest) } ?? longest
        _ = sequence.wait(ifEqualTo: expected, until: wait.deadline.capped(atMost: length))
    }

    /// Wakes every sleeper of every kind (a cancelled waiter's task calls this).
    func wakeAll() {
        notEmptySequence.wakeAll()
        notFullSequence.wakeAll()
        joinSequence.wakeAll()
    }
}
