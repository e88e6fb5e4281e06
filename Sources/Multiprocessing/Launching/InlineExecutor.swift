import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs a task's jobs on the thread that calls ``runForever()``.
///
/// Used only in a child made by the `fork` start method: the copy of Swift's concurrency
/// runtime in such a child believes in worker threads that did not survive the fork, so jobs
/// sent to the global executor never run. Jobs for a task that prefers this executor run here.
final class InlineExecutor: TaskExecutor, @unchecked Sendable {
    private let jobs = Mutex<[UnownedJob]>([])
    private let pending = Atomic<Int>(0)

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        jobs.withLock { $0.append(unowned) }
        pending.add(1, ordering: .releasing)
    }

    /// Drains jobs as they come; naps briefly when there are none (a forked child is a
    /// last resort, not a hot path).
    func runForever() -> Never {
        while true {
            if !runPending() { waitForWork() }
        }
    }

    /// Runs the jobs enqueued so far; `false` when there were none.
    @discardableResult
    func runPending() -> Bool {
        let batch = jobs.withLock { jobs -> [UnownedJob] in
            defer { jobs.removeAll(keepingCapacity: true) }
            return jobs
        }
        if batch.isEmpty { return false }
        _ = pending.subtract(batch.count, ordering: .acquiring)
        for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
        return true
    }

    private func waitForWork() {
        while pending.load(ordering: .acquiring) == 0 { Syscall.sleep(nanoseconds: 200_000) }
    }
}
