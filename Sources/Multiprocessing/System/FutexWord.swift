import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A 32-bit atomic word in shared memory that processes can sleep on (a futex).
///
/// The pointer stays valid because every primitive keeps its ``SharedMemory`` alive.
struct FutexWord: @unchecked Sendable {
    let atomic: UnsafeMutablePointer<Atomic<UInt32>>

    init(_ address: UnsafeMutableRawPointer) {
        atomic = address.assumingMemoryBound(to: Atomic<UInt32>.self)
    }

    private var raw: UnsafeMutablePointer<UInt32> {
        UnsafeMutableRawPointer(atomic).assumingMemoryBound(to: UInt32.self)
    }

    @inline(__always) func load() -> UInt32 { atomic.pointee.load(ordering: .acquiring) }

    @inline(__always) func store(_ value: UInt32) { atomic.pointee.store(value, ordering: .releasing) }

    @inline(__always) func exchange(_ value: UInt32) -> UInt32 {
        atomic.pointee.exchange(value, ordering: .acquiringAndReleasing)
    }

    @inline(__always) func compareExchange(_ expected: UInt32, _ desired: UInt32) -> (
        exchanged: Bool, original: UInt32
    ) {
        atomic.pointee.compareExchange(
            expected: expected, desired: desired, successOrdering: .acquiringAndReleasing,
            failureOrdering: .acquiring)
    }

    @inline(__always) func add(_ delta: UInt32) -> UInt32 {
        atomic.pointee.wrappingAdd(delta, ordering: .acquiringAndReleasing).oldValue
    }

    @inline(__always) func subtract(_ delta: UInt32) -> UInt32 {
        atomic.pointee.wrappingSubtract(delta, ordering: .acquiringAndReleasing).oldValue
    }

    /// Sleeps while the word equals `expected`, until woken or `deadline`. Spurious wake-ups
    /// happen: callers re-check their condition.
    func wait(ifEqualTo expected: UInt32, until deadline: WaitDeadline) -> FutexWaitResult {
        Syscall.futexWait(raw, expected, deadline: deadline.nanoseconds)
    }

    /// Wakes up to `count` sleepers.
    @discardableResult func wake(_ count: Int32 = 1) -> Int32 { Syscall.futexWake(raw, count) }

    /// Wakes every sleeper.
    @discardableResult func wakeAll() -> Int32 { wake(Int32.max) }
}

/// What a futex wait ended with.
enum FutexWaitResult {
    /// Woken, the word no longer held the expected value, or interrupted: look again.
    case woken
    /// The deadline passed.
    case timedOut
}

extension FutexWord {
    /// How long an async waiter sleeps at most before it checks its cancellation flag again: a
    /// cancellation that lands between the check and the sleep costs at most this.
    static let cancellationSlice: Int64 = 50_000_000

    /// Sleeps while the word equals `expected`, until woken, `deadline` or (with a
    /// `cancellation`) the next cancellation check. `.timedOut` only once `deadline` has passed;
    /// `.woken` means "look again" (a wake-up, a spurious return, a cancellation check).
    func wait(
        ifEqualTo expected: UInt32, until deadline: WaitDeadline, cancellation: WaitCancellation?
    ) -> FutexWaitResult {
        guard let cancellation else { return wait(ifEqualTo: expected, until: deadline) }
        if cancellation.isCancelled { return .woken }
        let result = wait(ifEqualTo: expected, until: deadline.capped(atMost: Self.cancellationSlice))
        return result == .timedOut && !deadline.hasPassed ? .woken : result
    }

    /// Adds `delta` with sequential consistency (for a waiter count read against another word).
    @inline(__always) func addSequentially(_ delta: UInt32) -> UInt32 {
        atomic.pointee.wrappingAdd(delta, ordering: .sequentiallyConsistent).oldValue
    }

    /// Subtracts `delta` with sequential consistency.
    @inline(__always) func subtractSequentially(_ delta: UInt32) -> UInt32 {
        atomic.pointee.wrappingSubtract(delta, ordering: .sequentiallyConsistent).oldValue
    }

    /// Compare-and-exchange with sequential consistency.
    @inline(__always) func compareExchangeSequentially(_ expected: UInt32, _ desired: UInt32) -> (
        exchanged: Bool, original: UInt32
    ) {
        atomic.pointee.compareExchange(
            expected: expected, desired: desired, ordering: .sequentiallyConsistent)
    }

    /// Loads with sequential consistency.
    @inline(__always) func loadSequentially() -> UInt32 {
        atomic.pointee.load(ordering: .sequentiallyConsistent)
    }
}
