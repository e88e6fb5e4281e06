import Testing

@testable import MultiprocessingPostgres

@Suite("Wakeup: the worker's and the router's wake-ups")
struct WakeupTests {
    @Test("a signal before the wait counts once; a wait with none times out with false")
    func sticky() async {
        let wake = Wakeup()
        wake.signal()
        wake.signal()
        #expect(await wake.wait(upTo: .seconds(60)))
        let start = ContinuousClock.now
        #expect(await wake.wait(upTo: .milliseconds(50)) == false)
        #expect(ContinuousClock.now - start >= .milliseconds(50))
    }

    @Test("a signal ends a wait in progress; an earlier wait's timer does not end a later one")
    func signalAndStaleTimer() async throws {
        let wake = Wakeup()
        // The first wait must be ended by the signal, its timer still pending: on a stalled
        // machine the timer can win, so try again until the signal did.
        var signalledFirst = false
        for _ in 0..<10 where !signalledFirst {
            let first = Task { await wake.wait(upTo: .milliseconds(500)) }
            try await Task.sleep(for: .milliseconds(10))
            wake.signal()
            signalledFirst = await first.value
            if !signalledFirst { _ = await wake.wait(upTo: .zero) }  // Drop the unused signal.
        }
        #expect(signalledFirst)
        // The first wait's timer fires during this one.
        let second = Task { await wake.wait(upTo: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(800))
        wake.signal()
        #expect(await second.value)  // `false` had the first wait's timer ended it.
    }

    @Test("cancelling the waiting task ends its wait with false, before or during it")
    func cancelled() async throws {
        let wake = Wakeup()
        let during = Task { await wake.wait(upTo: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(20))
        during.cancel()
        #expect(await during.value == false)
        let before = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await wake.wait(upTo: .seconds(60))
        }
        #expect(await before.value == false)
        // Still usable.
        wake.signal()
        #expect(await wake.wait(upTo: .seconds(60)))
    }
}
