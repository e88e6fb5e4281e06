import CMultiprocessing
import Synchronization
import Testing

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// The epoll reactor on its own: readiness, time-outs, cancellation, forgetting a descriptor,
/// watch handlers, several waiters on one descriptor.
@Suite("IOReactor")
struct IOReactorTests {
    /// A connected socket pair, closed by the caller.
    func pair() throws -> (Int32, Int32) {
        try Syscall.socketPair()
    }

    func closeBoth(_ fds: (Int32, Int32), _ reactor: IOReactor) {
        reactor.forget(fds.0)
        reactor.forget(fds.1)
        close(fds.0)
        close(fds.1)
    }

    @Test("a waiter is woken when its descriptor becomes readable, and every waiter of it is")
    func readiness() async throws {
        let reactor = try IOReactor.running()
        let fds = try pair()
        defer { closeBoth(fds, reactor) }
        let woken = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<3 {
                group.addTask { try await reactor.wait(fds.0, for: .read, timeout: .seconds(30)) }
            }
            var byte: UInt8 = 1
            // Written from here at any moment: a waiter that registers after it still sees it.
            #expect(write(fds.1, &byte, 1) == 1)
            var count = 0
            for try await wasWoken in group where wasWoken { count += 1 }
            return count
        }
        #expect(woken == 3)
    }

    @Test("a writable descriptor is ready for writing at once")
    func writable() async throws {
        let reactor = try IOReactor.running()
        let fds = try pair()
        defer { closeBoth(fds, reactor) }
        #expect(try await reactor.wait(fds.0, for: .write, timeout: .seconds(30)))
    }

    @Test("a time-out returns false; a zero or past time-out does not wait at all")
    func timeouts() async throws {
        let reactor = try IOReactor.running()
        let fds = try pair()
        defer { closeBoth(fds, reactor) }
        #expect(try await reactor.wait(fds.0, for: .read, timeout: .milliseconds(20)) == false)
        #expect(try await reactor.wait(fds.0, for: .read, timeout: .zero) == false)
        #expect(try await reactor.wait(fds.0, for: .read, timeout: .seconds(-1)) == false)
        // The timed-out waiters are gone: a later write wakes only the new one.
        var byte: UInt8 = 7
        #expect(write(fds.1, &byte, 1) == 1)
        #expect(try await reactor.wait(fds.0, for: .read, timeout: .seconds(30)))
    }

    @Test("cancelling the waiting task ends its wait with .cancelled")
    func cancellation() async throws {
        let reactor = try IOReactor.running()
        let fds = try pair()
        defer { closeBoth(fds, reactor) }
        let waiter = Task { () -> String in
            do {
                try await reactor.wait(fds.0, for: .read)
                return "woken"
            } catch {
                return "\(error)"
            }
        }
        try await Task.sleep(for: .milliseconds(20))
        waiter.cancel()
        #expect(await waiter.value == "cancelled")
        // Cancelled before it starts waiting: the same.
        let early = Task { () -> String in
            withUnsafeCurrentTask { $0?.cancel() }
            do {
                try await reactor.wait(fds.0, for: .read)
                return "woken"
            } catch {
                return "\(error)"
            }
        }
        #expect(await early.value == "cancelled")
    }

    @Test("forgetting a descriptor ends its waits with .closed; a stop condition does too")
    func forgetting() async throws {
        let reactor = try IOReactor.running()
        let fds = try pair()
        defer {
            close(fds.0)
            close(fds.1)
        }
        let waiter = Task { () -> String in
            do {
                try await reactor.wait(fds.0, for: .read)
                return "woken"
            } catch {
                return "\(error)"
            }
        }
        try await Task.sleep(for: .milliseconds(20))
        reactor.forget(fds.0)
        #expect(await waiter.value == "closed")
        do {
            try await reactor.wait(fds.1, for: .read, unless: { true })
            Issue.record("a wait whose stop condition holds must not wait")
        } catch {
            #expect("\(error)" == "closed")
        }
        reactor.forget(fds.1)
    }

    @Test("a watch handler runs on each readiness until it returns false")
    func watchHandler() async throws {
        let reactor = try IOReactor.running()
        let fds = try pair()
        defer { closeBoth(fds, reactor) }
        let calls = Counter()
        let done = OneShotEvent()
        try reactor.watch(fds.0) {
            var byte: UInt8 = 0
            _ = read(fds.0, &byte, 1)
            let n = calls.increment()
            if n == 3 { done.fire() }
            return n < 3
        }
        for _ in 0..<3 {
            // One readiness at a time: wait until the handler has taken this byte.
            let before = calls.value
            var byte: UInt8 = 1
            #expect(write(fds.1, &byte, 1) == 1)
            for _ in 0..<3000 where calls.value == before {
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        await done.wait(timeout: .seconds(30))
        #expect(done.hasFired)
        // Returned false: a fourth byte is not handled.
        var byte: UInt8 = 1
        #expect(write(fds.1, &byte, 1) == 1)
        try await Task.sleep(for: .milliseconds(50))
        #expect(calls.value == 3)
    }
}

/// A counter shared with a handler on the reactor's thread.
private final class Counter: Sendable {
    private let count = Atomic<Int>(0)
    var value: Int { count.load(ordering: .relaxed) }
    func increment() -> Int { count.add(1, ordering: .relaxed).newValue }
}
