import Synchronization

/// A function value registered with the pool; workers receive it once, then only its id.
struct InstalledFunction: Sendable {
    let id: UInt64
    let typeName: String
    let payload: [UInt8]
}

/// What a job is called in errors: built only when an error needs it.
enum JobLabel: Sendable, CustomStringConvertible {
    /// Map items `start ..< start + count`.
    case items(start: Int, count: Int)
    /// A single submitted input, described on demand.
    case input(@Sendable () -> String)

    var description: String {
        switch self {
        case .items(let start, 1): "#\(start)"
        case .items(let start, let count): "#\(start)..<#\(start + count)"
        case .input(let describe): describe()
        }
    }
}

/// How a job ended, as the parent sees it.
enum JobResult: Sendable {
    /// The worker answered with `status` and `bytes` (see ``PoolWire/Status``).
    case answered(PoolWire.Status, [UInt8])
    /// It did not run to an answer.
    case failed(any Error)
}

/// One unit of work: a chunk of inputs for one function. Completed exactly once.
final class PoolJob: Sendable {
    enum Phase: UInt8 {
        case queued = 0
        case running = 1
        case finished = 2
        case cancelled = 3
    }

    let id: UInt64
    let function: InstalledFunction
    let input: [UInt8]
    let label: JobLabel
    private let completion: @Sendable (JobResult) -> Void
    private let phase = Atomic<UInt8>(Phase.queued.rawValue)
    /// Workers this job was running on when they died.
    let workersKilled = Atomic<Int>(0)
    /// The pid of the worker currently running it (0 when none), so that cancelling can stop it.
    let runningOn = Atomic<Int32>(0)

    init(
        id: UInt64, function: InstalledFunction, input: [UInt8], label: JobLabel,
        completion: @escaping @Sendable (JobResult) -> Void
    ) {
        self.id = id
        self.function = function
        self.input = input
        self.label = label
        self.completion = completion
    }

    var isCancelled: Bool { phase.load(ordering: .acquiring) == Phase.cancelled.rawValue }

    /// Marks the job as handed to a worker; `false` if it was cancelled meanwhile.
    func markRunning(on pid: Int32) -> Bool {
        runningOn.store(pid, ordering: .releasing)
        return phase.compareExchange(
            expected: Phase.queued.rawValue, desired: Phase.running.rawValue, ordering: .acquiringAndReleasing
        ).exchanged
    }

    /// Back to the queue (its worker died before answering, through no fault of its own).
    func markQueued() {
        runningOn.store(0, ordering: .releasing)
        _ = phase.compareExchange(
            expected: Phase.running.rawValue, desired: Phase.queued.rawValue, ordering: .acquiringAndReleasing
        )
    }

    /// Delivers the result unless the job already finished or was cancelled.
    func finish(_ result: JobResult) {
        let old = phase.exchange(Phase.finished.rawValue, ordering: .acquiringAndReleasing)
        guard old == Phase.queued.rawValue || old == Phase.running.rawValue else {
            if old == Phase.cancelled.rawValue { phase.store(Phase.cancelled.rawValue, ordering: .releasing) }
            return
        }
        completion(result)
    }

    /// Cancels the job: delivers ``PoolError/cancelled`` now. Returns the pid of the worker that
    /// was running it, which the caller must stop, or `nil` if it was not running.
    func cancel() -> Int32? {
        let old = phase.exchange(Phase.cancelled.rawValue, ordering: .acquiringAndReleasing)
        guard old == Phase.queued.rawValue || old == Phase.running.rawValue else {
            if old == Phase.finished.rawValue { phase.store(Phase.finished.rawValue, ordering: .releasing) }
            return nil
        }
        completion(.failed(PoolError.cancelled))
        let pid = runningOn.load(ordering: .acquiring)
        return old == Phase.running.rawValue && pid > 0 ? pid : nil
    }
}

/// A FIFO of jobs with cheap removal from the front and re-insertion at the front.
struct JobQueue {
    private var items: [PoolJob] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }

    mutating func append(_ job: PoolJob) { items.append(job) }

    mutating func append(contentsOf jobs: [PoolJob]) { items.append(contentsOf: jobs) }

    /// Puts `jobs` back at the front, in their order: they were taken first and go first again.
    mutating func prepend(_ jobs: [PoolJob]) {
        guard !jobs.isEmpty else { return }
        if head >= jobs.count {
            head -= jobs.count
            for (i, job) in jobs.enumerated() { items[head + i] = job }
        } else {
            items = jobs + items[head...]
            head = 0
        }
    }

    mutating func popFirst() -> PoolJob? {
        guard head < items.count else { return nil }
        defer {
            head += 1
            if head == items.count {
                items.removeAll(keepingCapacity: true)
                head = 0
            } else if head > 4096 && head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
        }
        return items[head]
    }

    mutating func removeAll() -> [PoolJob] {
        defer {
            items.removeAll()
            head = 0
        }
        return Array(items[head...])
    }
}
