import Multiprocessing
import Synchronization

/// A worker's in-memory state: the tasks it holds, which of them run, the outcomes waiting to
/// be recorded, and where it is in its life (serving, draining, stopping).
final class WorkerCore: Sendable {
    enum Phase: Sendable { case serving, draining, stopping }

    struct Held: Sendable {
        var task: ClaimedTask
        var started = false
        var call: RegisteredFunction.Call?
        var outcomeQueued = false
        var startedAt: ContinuousClock.Instant?
    }

    struct State: Sendable {
        var phase = Phase.serving
        var held: [Int64: Held] = [:]
        var ready: [Int64] = []
        var running = 0
        var outcomes: [AttemptOutcome] = []
        var statistics = ClusterWorkerStatistics()
        var drainDeadline: ContinuousClock.Instant?
        /// Attempts in a row that took under ``quickTask`` of the worker's time (see
        /// ``finished(_:_:)``), and when the last one ended.
        var quickStreak = 0
        var lastFinish: ContinuousClock.Instant?
        /// The claimer waits for room (it had none, or its last claim came back full): recorded
        /// outcomes wake it. Otherwise the queue had nothing more, and only a notification (or
        /// the poll) does, so that finishing a task costs no empty claim.
        var roomWanted = false
    }

    /// An attempt this short is worth handing to the local pool ahead of a free slot.
    static let quickTask: Duration = .milliseconds(1)
    /// Quick attempts in a row before the worker starts running ahead.
    static let quickStreakToRunAhead = 8

    let state = Mutex(State())
    let dispatchWake = Wakeup()
    let claimWake = Wakeup()
    let flushWake = Wakeup()
    let concurrency: Int
    /// How many tasks the worker holds at most, and while attempts are quick: by default a
    /// worker claims few tasks ahead, so that a slow task's neighbours go to other workers, and
    /// many once they prove quick, so that a claim (a commit) is shared by hundreds of them.
    let heldLimit: Int
    let quickHeldLimit: Int
    let grace: Duration
    let completionDelay: Duration
    /// How many tasks beyond its slots the worker hands its local pool while tasks are quick.
    let runAhead: Int

    init(options: ClusterWorkerOptions) {
        concurrency = options.concurrency.value
        heldLimit = Swift.max(options.heldLimit, 1)
        quickHeldLimit = Swift.max(options.quickHeldLimit, 1)
        grace = options.shutdownGrace
        completionDelay = options.completionDelay
        runAhead = concurrency * 32
    }

    var phase: Phase { state.withLock { $0.phase } }
    var statistics: ClusterWorkerStatistics { state.withLock { $0.statistics } }

    private func wakeAll() {
        dispatchWake.signal()
        claimWake.signal()
        flushWake.signal()
    }

    // MARK: Life

    func beginDraining() {
        let changed = state.withLock { state -> Bool in
            guard state.phase == .serving else { return false }
            state.phase = .draining
            state.drainDeadline = .now + grace
            return true
        }
        if changed { wakeAll() }
    }

    func stopNow() {
        let calls = state.withLock { state -> [RegisteredFunction.Call] in
            guard state.phase != .stopping else { return [] }
            state.phase = .stopping
            return state.held.values.compactMap { $0.outcomeQueued ? nil : $0.call }
        }
        for call in calls { call.cancel() }
        wakeAll()
    }

    // MARK: Claims and starts

    /// How many tasks to claim now: none while the worker holds enough; otherwise the free room,
    /// once half of it is free or a slot would sit idle (so claims come in batches).
    func claimRoom() -> Int {
        state.withLock { state in
            guard state.phase == .serving else { return 0 }
            let limit = self.limit(state)
            let free = limit - state.held.count
            let idle = state.ready.isEmpty && state.running < concurrency
            let room = free > 0 && (free * 2 >= limit || idle) ? free : 0
            if room == 0 { state.roomWanted = true }
            return room
        }
    }

    func add(_ claimed: [ClaimedTask]) {
        guard !claimed.isEmpty else { return }
        state.withLock { state in
            for task in claimed {
                // A newer attempt of a task whose last outcome is still being written (the
                // claim's answer came first) supersedes the old entry.
                if let held = state.held[task.id], held.task.attempt >= task.attempt { continue }
                state.held[task.id] = Held(task: task)
                state.ready.append(task.id)
            }
            state.statistics.claimed += claimed.count
        }
        dispatchWake.signal()
    }

    /// The next tasks to start, as slots free up; `nil` once the worker is done (not serving,
    /// nothing running). A drain past its grace turns into a stop.
    ///
    /// While attempts are quick (``quickStreakToRunAhead`` in a row under ``quickTask``), up to
    /// ``runAhead`` more tasks than slots go to the local pool, which queues them and sends them
    /// to its processes together (as it does with its own short jobs): otherwise each of them
    /// would wait for a round trip through this loop. A task with a time-out only ever starts
    /// in a free slot, so that its clock does not run while it waits in the pool.
    func nextToStart() async -> [ClaimedTask]? {
        while true {
            let (batch, done, overdue) = state.withLock { state -> ([ClaimedTask], Bool, Bool) in
                if state.phase != .serving {
                    let overdue = state.phase == .draining && state.drainDeadline.map { .now >= $0 } == true
                    return ([], state.running == 0, overdue)
                }
                var batch: [ClaimedTask] = []
                let ahead = state.quickStreak >= Self.quickStreakToRunAhead ? runAhead : 0
                let now = ContinuousClock.now
                while let id = state.ready.first {
                    guard var held = state.held[id] else {
                        state.ready.removeFirst()
                        continue
                    }
                    let free = state.running < concurrency
                    guard free || (state.running < concurrency + ahead && held.task.timeout == nil) else {
                        break
                    }
                    state.ready.removeFirst()
                    held.started = true
                    held.startedAt = now
                    state.held[id] = held
                    state.running += 1
                    batch.append(held.task)
                }
                return (batch, false, false)
            }
            if done { return nil }
            if overdue { stopNow() }
            if !batch.isEmpty { return batch }
            await dispatchWake.wait(upTo: .milliseconds(500))
        }
    }

    /// The claimed tasks that have not started (a draining worker hands them back).
    func takeReady() -> [Int64] {
        state.withLock { state in
            let ids = state.ready.filter { state.held[$0] != nil }
            state.ready = []
            for id in ids { state.held[id] = nil }
            state.statistics.handedBack += ids.count
            return ids
        }
    }

    /// Every held task without a recorded or queued outcome.
    func takeUnfinished() -> [Int64] {
        state.withLock { state in
            let ids = state.held.values.filter { !$0.outcomeQueued }.map(\.task.id)
            for id in ids { state.held[id] = nil }
            state.ready = []
            return ids
        }
    }

    func count(handedBack: Int) {
        state.withLock { $0.statistics.handedBack += handedBack }
    }

    var heldIDs: [Int64] { state.withLock { Array($0.held.keys) } }

    /// Records the running call of a task; `false` when the task was taken away meanwhile (the
    /// caller cancels the call).
    func attach(_ call: RegisteredFunction.Call, to task: ClaimedTask) -> Bool {
        state.withLock { state in
            guard var held = state.held[task.id], held.task.attempt == task.attempt, state.phase != .stopping
            else {
                return false
            }
            held.call = call
            state.held[task.id] = held
            return true
        }
    }

    /// A started task ended. Its outcome waits for the flusher, unless the task was taken away
    /// (cancelled, rescued) or stopped by a shutdown (then it is handed back). The flusher hears
    /// of the first waiting outcome (it starts the ``completionDelay``) and of the moment the
    /// outcomes are due (``flushDue``).
    func finished(_ task: ClaimedTask, _ outcome: AttemptOutcome) {
        let wake = state.withLock { state -> Bool in
            state.running -= 1
            // The worker's time for this attempt: since it started, or since the one before
            // it ended if that was later (it waited in the local pool meanwhile).
            let now = ContinuousClock.now
            if let startedAt = state.held[task.id]?.startedAt {
                let spent = now - max(startedAt, state.lastFinish ?? startedAt)
                state.quickStreak = spent < Self.quickTask ? state.quickStreak + 1 : 0
            }
            state.lastFinish = now
            guard var held = state.held[task.id], held.task.attempt == task.attempt else { return false }
            // Stopped by us.
            if state.phase == .stopping, case .pool(.other) = outcome.error { return false }
            held.outcomeQueued = true
            held.call = nil
            state.held[task.id] = held
            state.outcomes.append(outcome)
            return state.outcomes.count == 1 || due(state)
        }
        if wake { flushWake.signal() }
        dispatchWake.signal()
    }

    /// Whether the waiting outcomes should be written now rather than after the delay: enough
    /// of them, nothing left to run (an idle worker's caller is waiting for this one), or the
    /// worker is leaving.
    var flushDue: Bool { state.withLock { due($0) } }

    /// The held limit now: ``quickHeldLimit`` once attempts are quick.
    private func limit(_ state: State) -> Int {
        state.quickStreak >= Self.quickStreakToRunAhead ? quickHeldLimit : heldLimit
    }

    private func due(_ state: State) -> Bool {
        guard !state.outcomes.isEmpty else { return false }
        // Outcomes written at once: a quarter of what the worker may hold; fewer wait up to
        // ``completionDelay`` for company.
        return state.outcomes.count >= Swift.max(1, limit(state) / 4)
            || (state.running == 0 && state.ready.isEmpty)
            || state.phase != .serving
    }

    func takeOutcomes(limit: Int) -> [AttemptOutcome] {
        state.withLock { state in
            let batch = Array(state.outcomes.prefix(limit))
            state.outcomes.removeFirst(batch.count)
            return batch
        }
    }

    var hasOutcomes: Bool { state.withLock { !$0.outcomes.isEmpty } }

    /// A claim came back full: the queue may hold more, worth claiming once there is room.
    func claimFilled() {
        state.withLock { $0.roomWanted = true }
    }

    /// Outcomes were written (`accepted` took theirs, the others were refused): the tasks leave.
    func recorded(_ outcomes: [AttemptOutcome], accepted: Set<Int64>) {
        let wake = state.withLock { state -> Bool in
            for outcome in outcomes {
                if let held = state.held[outcome.id], held.task.attempt == outcome.attempt {
                    state.held[outcome.id] = nil
                }
                if accepted.contains(outcome.id) {
                    state.statistics.recorded += 1
                } else {
                    state.statistics.refused += 1
                }
            }
            defer { state.roomWanted = false }
            return state.roomWanted
        }
        if wake { claimWake.signal() }
    }

    /// Tasks that are no longer this worker's (cancelled, finished elsewhere, rescued): they
    /// leave, and those running are stopped.
    func abandon(_ ids: some Sequence<Int64>) {
        let calls = state.withLock { state -> [RegisteredFunction.Call] in
            var calls: [RegisteredFunction.Call] = []
            for id in ids {
                guard let held = state.held[id], !held.outcomeQueued else { continue }
                state.held[id] = nil
                if held.started {
                    state.statistics.stoppedRunning += 1
                    if let call = held.call { calls.append(call) }
                }
            }
            return calls
        }
        for call in calls { call.cancel() }
        if !calls.isEmpty { claimWake.signal() }
    }
}
