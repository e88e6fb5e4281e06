import Dispatch
import Synchronization

/// Runs blocking futex waits for async callers on threads of their own, so a task waiting for a
/// process-shared lock never pins one of Swift's few cooperative threads. Threads are reused
/// while work keeps coming and leave after a quiet spell.
enum WaitThreads {
    /// Waits on another thread with `body`; cancelling the calling task sets the cancellation
    /// flag and calls `wake` (which wakes the futex `body` sleeps on).
    static func run<T: Sendable>(
        _ body: @escaping @Sendable (WaitCancellation) -> T, wake: @escaping @Sendable () -> Void
    ) async -> T {
        let cancellation = WaitCancellation()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
                submit { continuation.resume(returning: body(cancellation)) }
            }
        } onCancel: {
            cancellation.cancel()
            wake()
        }
    }

    /// Like ``run(_:wake:)``, one waiter of `gate` at a time: the other tasks of this process
    /// that wait on the same primitive queue in the gate (suspended, no thread), so a thousand
    /// waiting tasks cost one thread, not a thousand. `gaveUp` makes the result of a wait that
    /// ended in the gate (`true`: cancelled, `false`: `deadline` passed); `ready`, tried once
    /// through the gate, ends the wait without a thread when it can (the waiter ahead was woken
    /// by what wakes this one too).
    static func run<T: Sendable>(
        through gate: HandoffLock, until deadline: WaitDeadline,
        _ body: @escaping @Sendable (WaitCancellation) -> T, wake: @escaping @Sendable () -> Void,
        ready: () -> T? = { nil }, gaveUp: (_ cancelled: Bool) -> T
    ) async -> T {
        guard await gate.lock(until: deadline) else { return gaveUp(Task.isCancelled) }
        defer { gate.unlock() }
        if let result = ready() { return result }
        return await run(body, wake: wake)
    }

    private final class Worker: Sendable {
        let signal = DispatchSemaphore(value: 0)
        let job = Mutex<(@Sendable () -> Void)?>(nil)
    }

    /// Threads waiting for a job. Replaced in a `.fork` child (see ``resetAfterFork()``).
    nonisolated(unsafe) private static var idle = Idle()

    private final class Idle: Sendable {
        let workers = Mutex<[Worker]>([])
    }

    /// In a child made by `fork`: the idle threads did not survive (a job handed to one would
    /// never run), and the list's lock may have been held.
    static func resetAfterFork() { idle = Idle() }

    /// In the parent before a `.fork`: makes what ``resetAfterFork()`` makes (see ``AfterFork``).
    static func prepareForFork() {
        _ = idle
        _ = Idle()
    }

    private static func submit(_ job: @escaping @Sendable () -> Void) {
        // No thread left: wait here, on the caller's thread, rather than not at all.
        if !start(job) { job() }
    }

    /// Runs `job` on one of the threads (a new one if none is idle); `false` when no thread
    /// could be started (the job does not run then).
    static func start(_ job: @escaping @Sendable () -> Void) -> Bool {
        if let worker = idle.workers.withLock({ $0.popLast() }) {
            worker.job.withLock { $0 = job }
            worker.signal.signal()
            return true
        }
        let worker = Worker()
        worker.job.withLock { $0 = job }
        do {
            try OSThread.detach(name: "mp-wait") { serve(worker) }
            return true
        } catch {
            return false
        }
    }

    private static func serve(_ worker: Worker) {
        while true {
            if let job = worker.job.withLock({ job in
                defer { job = nil }
                return job
            }) {
                job()
            }
            let list = idle  // This process's list: a worker never outlives a fork.
            list.workers.withLock { $0.append(worker) }
            if worker.signal.wait(timeout: .now() + .seconds(10)) == .timedOut {
                // Leave unless a job was handed over between the timeout and this check.
                let left = list.workers.withLock { workers -> Bool in
                    guard let index = workers.firstIndex(where: { $0 === worker }) else { return false }
                    workers.remove(at: index)
                    return true
                }
                if left { return }
                worker.signal.wait()
            }
        }
    }
}
