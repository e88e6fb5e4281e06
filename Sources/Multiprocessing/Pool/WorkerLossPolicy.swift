/// What a pool does when one of its workers dies: whom the death is charged to, and whether the
/// charged item fails or runs again.
///
/// Pure functions of what the driver knows when the worker is gone (its ledger, the jobs it
/// had, why the pool stopped it), so that every rule is unit-tested without killing anything;
/// ``WorkerDriver`` applies them.
enum WorkerLossPolicy {
    /// Whom a worker's death is charged to.
    enum Blame: Equatable {
        /// It died before it was ready (and the pool did not stop it): a startup failure; its
        /// jobs go back to the queue.
        case startup(initializing: Bool)
        /// Nobody: it died while idle, or had nothing unanswered. Its jobs go back.
        case nobody
        /// Its in-flight job at `index`: item `item` of that job (counted from the job's first
        /// item), or the job as a whole (`nil`) when the worker died outside any item while
        /// handling a frame. Every other job goes back.
        case job(index: Int, item: Int?)
    }

    /// Whom to charge with the death of a worker.
    ///
    /// - Parameters:
    ///   - stage: the stage in the worker's ledger.
    ///   - wasReady: whether the worker told its driver it was ready.
    ///   - stoppedByPool: whether the pool stopped it (time-out, memory, protocol violation...).
    ///   - runningItem: the item running when it died, from its ledger (counted over every item
    ///     the worker was sent).
    ///   - firstUnanswered: the number of the first item of the first unanswered job.
    ///   - itemCounts: how many items each unanswered job has, in the order they were sent.
    static func blame(
        stage: WorkerLedger.Stage, wasReady: Bool, stoppedByPool: Bool, runningItem: UInt64?,
        firstUnanswered: UInt64, itemCounts: [Int]
    ) -> Blame {
        let started = wasReady || stage == .idle || stage == .busy
        if !started && !stoppedByPool { return .startup(initializing: stage == .initializing) }
        if let running = runningItem, running >= firstUnanswered {
            var offset = running - firstUnanswered
            for (index, count) in itemCounts.enumerated() {
                if offset < UInt64(count) { return .job(index: index, item: Int(offset)) }
                offset -= UInt64(count)
            }
            return .nobody  // An item the driver never sent: trust nothing, blame no one.
        }
        if stage == .busy || stoppedByPool, !itemCounts.isEmpty { return .job(index: 0, item: nil) }
        return .nobody
    }

    /// Whether an item that has now been running in `kills` dead workers fails (otherwise it
    /// runs again on another worker).
    static func failsAfterKill(kills: Int, options: PoolOptions) -> Bool {
        kills > options.retries || kills >= options.maxWorkersKilledPerTask
    }

    /// How a death before a worker was ready counts.
    enum StartupFailure: Equatable {
        /// The initializer failed: it threw, or its worker ended other than by `SIGKILL` while
        /// running it. After ``PoolCore/initializerAttempts`` in a row the pool breaks.
        case initializer
        /// The worker was lost while starting (killed: the OOM killer, an operator). It is
        /// replaced; only after ``PoolCore/startupAttempts`` in a row does the waiting work fail.
        case lost
    }

    /// How a worker's death before it was ready counts.
    static func startupFailure(initializing: Bool, status: ExitStatus) -> StartupFailure {
        initializing && status != .signaled(.kill) ? .initializer : .lost
    }

    /// Whether `inARow` failures of this kind in a row are enough to give up.
    static func givesUp(after failure: StartupFailure, inARow: Int) -> Bool {
        switch failure {
        case .initializer: inARow >= PoolCore.initializerAttempts
        case .lost: inARow >= PoolCore.startupAttempts
        }
    }
}
