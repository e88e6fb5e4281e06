import Synchronization
import Testing

@testable import Multiprocessing

/// The library's one waiter line: FIFO, deadlines, cancellation, tasks and threads together.
@Suite("WaiterQueue")
struct WaiterQueueTests {
    /// A queue whose state is a stash of values nobody waited for.
    typealias Stash = WaiterQueue<[Int], Int>

    /// Takes a stashed value, or waits.
    static func take(_ l: inout Stash.Locked) -> Int? {
        l.state.isEmpty ? nil : l.state.removeFirst()
    }

    /// Hands `value` to the first waiter, or stashes it: never lost.
    static func give(_ queue: Stash, _ value: Int) {
        queue.withLock { l in
            if !l.resumeFirst(value) { l.state.append(value) }
        }
    }

    static func waitForWaiters(_ queue: Stash, _ count: Int) async throws {
        while queue.withLock({ $0.waiterCount }) < count { try await Task.sleep(for: .milliseconds(1)) }
    }

    /// Results gathered from tasks and threads, by waiter.
    final class Results: Sendable {
        let all = Mutex<[Int: [WaiterOutcome<Int>]]>([:])
        func add(_ waiter: Int, _ outcome: WaiterOutcome<Int>) {
            all.withLock { $0[waiter, default: []].append(outcome) }
        }
        var count: Int { all.withLock { $0.values.reduce(0) { $0 + $1.count } } }
    }

    @Test("waiters are served in the order they joined, tasks and threads alike")
    func fifoMixed() async throws {
        let queue = Stash([])
        let results = Results()
        var tasks: [Task<Void, Never>] = []
        for waiter in 0..<8 {
            if waiter % 2 == 0 {
                tasks.append(Task { results.add(waiter, await queue.wait(Self.take)) })
            } else {
                try OSThread.detach(name: "test-waiter") {
                    results.add(waiter, queue.waitBlocking(Self.take))
                }
            }
            try await Self.waitForWaiters(queue, waiter + 1)
        }
        for value in 0..<8 { Self.give(queue, value * 10) }
        for task in tasks { await task.value }
        while results.count < 8 { try await Task.sleep(for: .milliseconds(1)) }
        let all = results.all.withLock { $0 }
        for waiter in 0..<8 {
            #expect(all[waiter]?.count == 1)
            #expect(all[waiter]?.first?.value == waiter * 10)
        }
        #expect(queue.withLock { $0.waiterCount == 0 && $0.state.isEmpty })
    }

    @Test("a value already there ends the wait without joining the line")
    func ready() async {
        let queue = Stash([7, 8])
        #expect(await queue.wait(Self.take).value == 7)
        #expect(queue.waitBlocking(Self.take).value == 8)
        #expect(queue.withLock { $0.waiterCount } == 0)
    }

    @Test("a deadline ends a task's and a thread's wait, and leaves the line")
    func deadline() async throws {
        let queue = Stash([])
        let outcome = await queue.wait(until: WaitDeadline(after: .milliseconds(20)), Self.take)
        guard case .timedOut = outcome else {
            Issue.record("expected a time-out, got \(outcome)")
            return
        }
        let blocking = queue.waitBlocking(until: WaitDeadline(after: .milliseconds(20)), Self.take)
        guard case .timedOut = blocking else {
            Issue.record("expected a time-out, got \(blocking)")
            return
        }
        // A deadline already passed never joins.
        guard case .timedOut = await queue.wait(until: WaitDeadline(after: .zero), Self.take) else {
            Issue.record("expected a time-out")
            return
        }
        #expect(queue.withLock { $0.waiterCount } == 0)
        // The next value still goes to a live waiter, not to a timed-out one.
        let live = Task { await queue.wait(Self.take).value }
        try await Self.waitForWaiters(queue, 1)
        Self.give(queue, 5)
        #expect(await live.value == 5)
    }

    @Test("cancelling a waiting task ends its wait and leaves the line; a cancelled task never joins")
    func cancellation() async throws {
        let queue = Stash([])
        let waiter = Task { await queue.wait(Self.take) }
        try await Self.waitForWaiters(queue, 1)
        waiter.cancel()
        guard case .cancelled = await waiter.value else {
            Issue.record("expected a cancellation")
            return
        }
        #expect(queue.withLock { $0.waiterCount } == 0)
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await queue.wait(Self.take)
        }
        guard case .cancelled = await early.value else {
            Issue.record("expected a cancellation")
            return
        }
        #expect(queue.withLock { $0.waiterCount } == 0)
    }

    @Test("a hand-off racing a cancellation: each waiter resumed once, no value lost")
    func cancellationRacingHandoff() async throws {
        let queue = Stash([])
        for round in 0..<500 {
            let first = Task { await queue.wait(Self.take) }
            try await Self.waitForWaiters(queue, 1)
            let second = Task { await queue.wait(Self.take) }
            try await Self.waitForWaiters(queue, 2)
            // Cancel the first while the value is handed over, from another task.
            async let cancel: Void = first.cancel()
            Self.give(queue, round)
            await cancel
            let a = await first.value
            // The second gets the value if the first gave up, and otherwise waits on.
            if case .cancelled = a {
                #expect(await second.value.value == round)
            } else {
                #expect(a.value == round)
                second.cancel()
                guard case .cancelled = await second.value else {
                    Issue.record("round \(round): the second waiter got a value nobody gave")
                    return
                }
            }
            #expect(queue.withLock { $0.waiterCount == 0 && $0.state.isEmpty })
        }
    }

    @Test("a hand-off racing a deadline: each waiter resumed once, no value lost")
    func deadlineRacingHandoff() async throws {
        let queue = Stash([])
        var received = 0
        var stashed = 0
        for round in 0..<300 {
            let blocking = round % 2 == 1
            let deadline = WaitDeadline(after: .microseconds(200))
            let outcome: WaiterOutcome<Int>
            if blocking {
                let results = Results()
                try OSThread.detach(name: "test-waiter") {
                    results.add(0, queue.waitBlocking(until: deadline, Self.take))
                }
                while !deadline.hasPassed, queue.withLock({ $0.waiterCount }) == 0 { await Task.yield() }
                Self.give(queue, round)
                while results.count == 0 { try await Task.sleep(for: .microseconds(100)) }
                outcome = results.all.withLock { $0[0]![0] }
            } else {
                let waiter = Task { await queue.wait(until: deadline, Self.take) }
                while !deadline.hasPassed, queue.withLock({ $0.waiterCount }) == 0 { await Task.yield() }
                Self.give(queue, round)
                outcome = await waiter.value
            }
            // Either the waiter has it, or it is still in the stash.
            let left = queue.withLock { l in l.state.isEmpty ? nil : l.state.removeFirst() }
            if let value = outcome.value {
                #expect(value == round && left == nil)
                received += 1
            } else {
                #expect(left == round)
                stashed += 1
            }
            #expect(queue.withLock { $0.waiterCount } == 0)
        }
        #expect(received + stashed == 300)
    }

    @Test("resumeAll serves every waiter once; later waiters wait for the next value")
    func resumeAll() async throws {
        let queue = Stash([])
        let tasks = (0..<100).map { _ in Task { await queue.wait(Self.take).value } }
        try await Self.waitForWaiters(queue, 100)
        queue.withLock { $0.resumeAll(1) }
        var sum = 0
        for task in tasks { sum += await task.value ?? 0 }
        #expect(sum == 100)
        #expect(queue.withLock { $0.resumeFirst(2) } == false)
    }

    @Test("a non-cancellable wait ignores cancellation and still gets its value")
    func notCancellable() async throws {
        let queue = Stash([])
        let waiter = Task { await queue.wait(cancellable: false, Self.take).value }
        try await Self.waitForWaiters(queue, 1)
        waiter.cancel()
        try await Task.sleep(for: .milliseconds(5))
        #expect(queue.withLock { $0.waiterCount } == 1)
        Self.give(queue, 3)
        #expect(await waiter.value == 3)
    }
}
