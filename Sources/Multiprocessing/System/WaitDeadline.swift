import CMultiprocessing

/// An instant on the monotonic clock, or none (wait forever).
struct WaitDeadline: Sendable, Comparable {
    /// Nanoseconds on CLOCK_MONOTONIC; negative means no deadline.
    let nanoseconds: Int64

    static let never = WaitDeadline(nanoseconds: -1)

    init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    /// `timeout` from now; `nil` is no deadline. A negative timeout is already past.
    init(after timeout: Duration?) {
        guard let timeout else {
            self = .never
            return
        }
        let (seconds, attoseconds) = timeout.components
        let ns = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let total = ns.partialValue.addingReportingOverflow(attoseconds / 1_000_000_000)
        guard !ns.overflow, !total.overflow else {
            self = seconds < 0 ? WaitDeadline(nanoseconds: 0) : .never
            return
        }
        // A timeout too long to add to the clock is no deadline (not a trap, not one in the past).
        let instant = Syscall.monotonicNanoseconds().addingReportingOverflow(max(total.partialValue, 0))
        self = instant.overflow ? .never : WaitDeadline(nanoseconds: max(0, instant.partialValue))
    }

    static var now: Int64 { Syscall.monotonicNanoseconds() }

    var isNever: Bool { nanoseconds < 0 }
    var hasPassed: Bool { !isNever && Syscall.monotonicNanoseconds() >= nanoseconds }

    /// The earlier of this deadline and `ns` nanoseconds from now.
    func capped(atMost ns: Int64) -> WaitDeadline {
        let cap = Syscall.monotonicNanoseconds() + ns
        return isNever || cap < nanoseconds ? WaitDeadline(nanoseconds: cap) : self
    }

    /// The time left until the deadline (zero once passed), or `nil` for no deadline.
    var remaining: Duration? {
        isNever ? nil : .nanoseconds(max(0, nanoseconds - Syscall.monotonicNanoseconds()))
    }

    static func < (a: WaitDeadline, b: WaitDeadline) -> Bool {
        if a.isNever { return false }
        if b.isNever { return true }
        return a.nanoseconds < b.nanoseconds
    }
}
