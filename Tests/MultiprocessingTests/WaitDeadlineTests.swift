import Dispatch
import Testing

@testable import Multiprocessing

@Suite("Wait deadlines")
struct WaitDeadlineTests {
    @Test("a timeout whose nanoseconds overflow when added up is no deadline, not one in the past")
    func wrappingTimeoutIsNotExpired() async throws {
        // 9_223_372_036 s + 999_999_999 ns is more than Int64.max nanoseconds.
        let huge = Duration(secondsComponent: 9_223_372_036, attosecondsComponent: 999_999_999_000_000_000)
        #expect(WaitDeadline(after: huge).hasPassed == false)

        // A waiter with that timeout waits for the set instead of giving up at once.
        let event = try ProcessEvent()
        let setter = Task {
            try await Task.sleep(for: .milliseconds(50))
            event.set()
        }
        let wasSet = try await onThread { event.waitBlocking(timeout: huge) }
        #expect(wasSet)
        try await setter.value
    }

    @Test("a timeout that reaches past the clock's range (Duration.nanoseconds(.max)) does not trap")
    func timeoutPastTheClockRange() async throws {
        #expect(WaitDeadline(after: .nanoseconds(Int64.max)).hasPassed == false)
        #expect(WaitDeadline(after: .seconds(Int64.max)).hasPassed == false)
        #expect(WaitDeadline(after: .nanoseconds(-1)).hasPassed)
        let semaphore = try ProcessSemaphore(value: 1)
        try semaphore.acquireBlocking(timeout: .nanoseconds(Int64.max))
        #expect(semaphore.value == 0)
    }
}
