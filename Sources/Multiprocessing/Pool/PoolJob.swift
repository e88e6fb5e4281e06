import Synchronization

/// A function value registered with the pool; workers receive it once, then only its id.
struct InstalledFunction: Sendable {
    let id: UInt64
    let typeName: String
    let payload: [UInt8]
    /// Descriptors of handles among the function's properties (shared memory, locks, queues):
    /// they travel with every install frame.
    var descriptors: [Int32] = []
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

/// Jobs that share a function and a destination for their results: one `map`, one chunk of a
/// streaming map, one submitted call. Drivers see only this type-erased face; the generic
/// subclasses encode the inputs and decode the outputs of a whole run of jobs at a time, so the
/// parent's generic work is per frame, not per job.
class JobBatch: @unchecked Sendable {
    let core: PoolCore
    let function: InstalledFunction
    /// The library's span for the batch, when a tracer records spans: set before its jobs are
    /// queued, its context travels with each of them.
    var trace: BatchTrace?

    init(core: PoolCore, function: InstalledFunction) {
        self.core = core
        self.function = function
    }

    /// How many inputs job `index` holds.
    func itemCount(_ index: Int) -> Int { 1 }

    /// What job `index` is called in errors.
    func label(_ index: Int) -> String { "#\(index)" }

    /// What item `position` of job `index` is called in errors.
    func itemLabel(_ index: Int, _ position: Int) -> String { "\(label(index)) item \(position)" }

    /// Appends the inputs of `jobs` (all of this batch) as one encoded `[Input]`; on failure
    /// `frame` is left as it was.
    func appendInputs(of jobs: ArraySlice<PoolJob>, to frame: inout [UInt8]) throws(CodecError) {
        fatalError("JobBatch.appendInputs is abstract")
    }

    /// Delivers a worker's answers for a run of this batch's jobs. Entries not `claimed` ended
    /// otherwise meanwhile: their answers are skipped.
    func deliver(_ run: ResultRun) {
        fatalError("JobBatch.deliver is abstract")
    }

    /// Delivers the failure of job `index` (already claimed).
    func fail(_ index: Int, _ error: any Error) {
        fatalError("JobBatch.fail is abstract")
    }

    /// Decodes the part of a job answered ahead of its end (an encoded `[ItemOutcome<Output>]`):
    /// one result per item, `nil` for items the worker skipped.
    func partialResults(_ payload: [UInt8], _ blob: Range<Int>) throws -> [Result<any Sendable, any Error>?] {
        fatalError("JobBatch.partialResults is abstract")
    }
}

/// One run of answers from a worker, as the driver hands it to the jobs' batch.
struct ResultRun {
    struct Entry {
        let job: PoolJob
        let status: PoolWire.Status
        /// The job's own bytes in `payload` (for statuses other than `values`).
        let blob: Range<Int>
        /// `false` when the job already ended (it was cancelled): its answer is dropped.
        var claimed: Bool
        /// Delivered instead of the answer (its worker went over the memory limit meanwhile).
        var override: (any Error)?
        /// Items whose result the pool already had (the worker skipped them): these replace
        /// what the worker sent for them.
        var itemOverrides: [Int: Result<any Sendable, any Error>] = [:]
    }

    let payload: [UInt8]
    var entries: [Entry]
    /// The outputs of every `values` entry, in order, as one encoded `[Output]`.
    let values: Range<Int>?

    var claimedCount: Int { entries.reduce(0) { $0 + ($1.claimed ? 1 : 0) } }
}

/// One unit of work: job `index` of its batch (a chunk of a map, or one call). Ends exactly
/// once: answered, failed or cancelled.
final class PoolJob: Sendable {
    enum Phase: UInt8 {
        case queued = 0
        case running = 1
        case finished = 2
        case cancelled = 3
    }

    let id: UInt64
    let batch: JobBatch
    let index: Int
    private let phase = Atomic<UInt8>(Phase.queued.rawValue)
    /// Workers this job was running on when they died.
    let workersKilled = Atomic<Int>(0)
    /// The pid of the worker currently running it (0 when none), so that cancelling can stop it.
    let runningOn = Atomic<Int32>(0)
    /// Items of a many-item job that already have their result: answered ahead of the job's
    /// end, or failed for good (they killed too many workers, or ran past the time-out).
    /// Workers skip them, and these results replace whatever comes back for them. Set only by
    /// the driver holding the job.
    private let verdicts = Mutex<ItemVerdicts>(ItemVerdicts())
    private let hasVerdicts = Atomic<Bool>(false)
    /// When it was queued and when it last went to a worker (monotonic nanoseconds), kept only
    /// when metrics are recorded.
    let queuedAt = Atomic<Int64>(0)
    let startedAt = Atomic<Int64>(0)

    init(id: UInt64, batch: JobBatch, index: Int) {
        self.id = id
        self.batch = batch
        self.index = index
    }

    var function: InstalledFunction { batch.function }
    var label: String { batch.label(index) }
    var itemCount: Int { batch.itemCount(index) }

    /// What item `position` of this job is called in errors (`"#17"` for map item 17).
    func itemLabel(_ position: Int) -> String {
        itemCount == 1 ? label : batch.itemLabel(index, position)
    }

    /// Positions of the items that workers must skip, in order; empty for almost every job.
    var skippedItems: [Int] {
        guard hasVerdicts.load(ordering: .acquiring) else { return [] }
        return verdicts.withLock { $0.errors.keys.sorted() }
    }

    /// The results the pool already has for some items, by position.
    var settledItems: [Int: Result<any Sendable, any Error>] {
        guard hasVerdicts.load(ordering: .acquiring) else { return [:] }
        return verdicts.withLock { $0.errors }
    }

    /// Counts a worker killed while item `position` ran; returns how many it has killed.
    func countKill(ofItem position: Int) -> Int {
        if itemCount == 1 { return workersKilled.add(1, ordering: .relaxed).newValue }
        return verdicts.withLock { v in
            v.kills[position, default: 0] += 1
            return v.kills[position]!
        }
    }

    /// Gives item `position` its final error; `true` when every item now has one (the job as
    /// a whole has nothing left to run).
    func settle(item position: Int, _ error: any Error) -> Bool {
        settle([(position, .failure(error))])
    }

    /// Records results that arrived ahead of the job's end; `true` when every item has one.
    @discardableResult
    func settle(_ results: [(position: Int, result: Result<any Sendable, any Error>)]) -> Bool {
        guard !results.isEmpty else { return false }
        let all = verdicts.withLock { v in
            for (position, result) in results where position < itemCount { v.errors[position] = result }
            return v.errors.count >= itemCount
        }
        hasVerdicts.store(true, ordering: .releasing)
        return all
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

    /// Takes the right to deliver the job's end: `false` if it already finished or was
    /// cancelled. Whoever claims it must deliver through the batch and count it as finished.
    func claim() -> Bool {
        let old = phase.exchange(Phase.finished.rawValue, ordering: .acquiringAndReleasing)
        guard old == Phase.queued.rawValue || old == Phase.running.rawValue else {
            if old == Phase.cancelled.rawValue { phase.store(Phase.cancelled.rawValue, ordering: .releasing) }
            return false
        }
        return true
    }

    /// Fails the job unless it already finished or was cancelled.
    func fail(_ error: any Error) {
        guard claim() else { return }
        batch.core.telemetry.ended(self, error: error, answered: false)
        batch.fail(index, error)
        batch.core.finished(1)
    }

    /// Cancels the job: delivers ``PoolError/cancelled`` now. Returns the pid of the worker that
    /// was running it, which the caller must stop, or `nil` if it was not running.
    func cancel() -> Int32? {
        let old = phase.exchange(Phase.cancelled.rawValue, ordering: .acquiringAndReleasing)
        guard old == Phase.queued.rawValue || old == Phase.running.rawValue else {
            if old == Phase.finished.rawValue { phase.store(Phase.finished.rawValue, ordering: .releasing) }
            return nil
        }
        batch.core.telemetry.ended(self, error: PoolError.cancelled, answered: false)
        batch.fail(index, PoolError.cancelled)
        batch.core.finished(1)
        let pid = runningOn.load(ordering: .acquiring)
        return old == Phase.running.rawValue && pid > 0 ? pid : nil
    }
}

/// The per-item state of a many-item job whose items killed workers.
struct ItemVerdicts: @unchecked Sendable {
    var kills: [Int: Int] = [:]
    var errors: [Int: Result<any Sendable, any Error>] = [:]
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
