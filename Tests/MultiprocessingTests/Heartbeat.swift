import Synchronization

@testable import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

/// A task that must keep ticking while a test's operations are pending: on a machine with few
/// cores, a handful of blocked cooperative threads stop it.
final class Heartbeat: Sendable {
    private let ticks = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    var count: Int { ticks.load(ordering: .acquiring) }

    /// Starts ticking on a task of its own.
    func start() -> Task<Void, Never> {
        Task.detached { [self] in
            while !stopped.load(ordering: .acquiring) {
                ticks.add(1, ordering: .releasing)
                try? await Task.sleep(for: .milliseconds(1))
            }
        }
    }

    func stop() { stopped.store(true, ordering: .releasing) }

    /// Waits (on a thread of its own, never a cooperative one) until the heartbeat ticked
    /// `beats` more times or `bound` passed; `true` if it ticked in time. The bound is loose:
    /// the rest of the suite runs beside the test on the same 2 cooperative threads (codec
    /// fuzzing holds one for seconds), while a wait that blocks them stops the heartbeat for good.
    func ticked(_ beats: Int, within bound: Duration = .seconds(120)) async -> Bool {
        let target = count + beats
        let deadline = WaitDeadline(after: bound)
        return
            (try? await BlockingThreads.shared.run { [self] in
                while count < target {
                    if deadline.hasPassed { return false }
                    usleep(1_000)
                }
                return true
            }) ?? false
    }
}

/// Runs `release` on an OS thread after `bound` (and every 50 ms from then on), until `cancel`
/// is called: frees
/// operations that block cooperative threads so a failing test ends instead of hanging.
final class Watchdog: Sendable {
    private let done = Atomic<Bool>(false)
    private let fired = Atomic<Bool>(false)

    init(after bound: Duration = .seconds(10), release: @escaping @Sendable () -> Void) {
        let deadline = WaitDeadline(after: bound)
        try! OSThread.detach(name: "test-watchdog") { [self] in
            while !done.load(ordering: .acquiring) {
                if deadline.hasPassed {
                    // Again and again: operations stuck later need releasing too.
                    fired.store(true, ordering: .releasing)
                    release()
                    usleep(50_000)
                } else {
                    usleep(1_000)
                }
            }
        }
    }

    /// Stops the watchdog; `true` if it had to release the operations (they were stuck).
    func cancel() -> Bool {
        done.store(true, ordering: .releasing)
        return fired.load(ordering: .acquiring)
    }
}
