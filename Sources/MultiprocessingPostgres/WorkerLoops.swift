import Logging
import Multiprocessing
import PostgresNIO

/// The loops of a running worker: notifications, claims, recording outcomes, heartbeats, the
/// rescuer, and running one task.
struct WorkerLoops: Sendable {
    let worker: ClusterWorker
    let db: ClusterDatabase
    let queries: WorkerQueries
    let maintenance: MaintenanceQueries
    let pool: ProcessPool
    let registration: WorkerRegistration

    var core: WorkerCore { worker.core }
    var options: ClusterWorkerOptions { worker.options }

    /// `LISTEN` for new work and for tasks finished elsewhere (cancelled ones among them),
    /// reconnecting with a growing pause.
    func listen() async {
        let core = self.core
        // Anything queued while we were not listening.
        await ClusterListener.run(
            db, listening: { core.claimWake.signal() }, lost: {}, handle: { payload in handle(payload) })
    }

    func handle(_ payload: String) {
        guard let kind = payload.first else { return }
        let body = payload.dropFirst()
        switch kind {
        case "q":
            if body.split(separator: ",").contains(where: { options.queues.contains(String($0)) }) {
                core.claimWake.signal()
            }
        case "f":
            core.abandon(body.split(separator: ",").compactMap { Int64($0) })
        default: break
        }
    }

    /// Claims work in batches while the worker serves; on a drain, hands back what has not
    /// started.
    func claim() async {
        let names = worker.taskNames
        while core.phase == .serving, !Task.isCancelled {
            let room = core.claimRoom()
            if room > 0 {
                do {
                    let claimed = try await db.retryingCounted("claiming tasks") { attempt in
                        // A claim whose answer was lost with its connection committed or not:
                        // after one, look for rows held under this worker's id.
                        var found = attempt > 1 ? try await queries.orphans(known: core.heldIDs) : []
                        found += try await queries.claim(
                            limit: room, queues: options.queues, names: names, lease: options.lease)
                        return found
                    }
                    core.add(claimed)
                    if !claimed.isEmpty {
                        db.metrics?.claimed(claimed)
                        db.events?.debug(
                            "claimed tasks",
                            metadata: ["tasks": "\(claimed.count)", "worker": "\(worker.id)"])
                    }
                    // Fewer than asked: the queue is empty for now, and new work comes with a
                    // notification (or the poll). Asking again at once would be an empty claim.
                    if claimed.count >= room {
                        core.claimFilled()
                        continue
                    }
                } catch  where !Task.isCancelled {
                    db.logger.warning("claiming failed", metadata: ["error": "\(error)"])
                    db.events?.warning(
                        "claiming failed", metadata: ["error": "\(error)", "worker": "\(worker.id)"])
                } catch {
                    break
                }
            }
            await core.claimWake.wait(upTo: db.configuration.pollInterval)
        }
        let ready = core.takeReady()
        if !ready.isEmpty {
            try? await db.retrying("handing back tasks") { try await queries.handBack(ready) }
        }
    }

    /// Records outcomes in batches: each write is a commit, so an outcome waits up to
    /// ``ClusterWorkerOptions/completionDelay`` for others to join it, unless the batch is full
    /// or the worker has nothing else to run (``WorkerCore/flushDue``). What accumulates during
    /// one write goes in the next.
    func flush() async {
        let delay = core.completionDelay
        while !Task.isCancelled {
            if !core.hasOutcomes { await core.flushWake.wait(upTo: .seconds(1)) }
            if core.hasOutcomes, delay > .zero {
                let deadline = ContinuousClock.now + delay
                while !core.flushDue, !Task.isCancelled, ContinuousClock.now < deadline {
                    await core.flushWake.wait(upTo: deadline - .now)
                }
            }
            // One write of what waits now: what comes during it waits for the next round.
            await flushOnce(untilEmpty: false)
        }
    }

    /// Writes every waiting outcome (with `untilEmpty`, also those that come during the
    /// writes). The write runs in a task of its own, so that cancelling the worker's loops does
    /// not cut a batch off half-way.
    func flushOnce(untilEmpty: Bool = true) async {
        var rounds = 0
        while untilEmpty || rounds == 0 {
            rounds += 1
            let batch = core.takeOutcomes(limit: 1000)
            guard !batch.isEmpty else { return }
            let poison = options.pool.maxWorkersKilledPerTask
            let queries = self.queries
            let db = self.db
            let accepted = await Task {
                try? await db.retrying("recording outcomes") {
                    try await queries.complete(batch, poisonLimit: poison)
                }
            }.value
            // Not written at all: the leases run out and the tasks run again elsewhere.
            core.recorded(batch, accepted: accepted ?? [])
            if let accepted {
                let refused = batch.filter { !accepted.contains($0.id) }
                if !refused.isEmpty {
                    db.metrics?.refused(refused.count)
                    for outcome in refused {
                        db.events?.warning(
                            "outcome refused: the task no longer runs this attempt here (lease passed on, cancelled, or written by an earlier try)",
                            metadata: [
                                "task": "\(outcome.id)", "attempt": "\(outcome.attempt)",
                                "worker": "\(worker.id)",
                            ])
                    }
                }
            }
        }
    }

    /// Renews held leases and the worker's heartbeat; stops tasks that are no longer ours.
    func heartbeat() async {
        while !Task.isCancelled {
            guard (try? await Task.sleep(for: options.heartbeat)) != nil else { return }
            var current = self.registration
            current.stopping = core.phase != .serving
            let registration = current
            let held = core.heldIDs
            let lease = options.lease
            if let lost = try? await db.retrying(
                "renewing leases",
                {
                    try await queries.heartbeat(held: held, lease: lease, registration: registration)
                })
            {
                core.abandon(lost)
            }
        }
    }

    /// Returns expired leases, fails tasks no live worker can run, forgets dead workers.
    func rescue() async {
        var round = 0
        while !Task.isCancelled {
            guard (try? await Task.sleep(for: options.rescueInterval)) != nil else { return }
            if let queues = try? await maintenance.rescueExpiredLeases(), !queues.isEmpty {
                db.metrics?.rescued(queues: queues)
                db.events?.warning(
                    "expired leases rescued: their workers stopped renewing them",
                    metadata: ["tasks": "\(queues.count)", "worker": "\(worker.id)"])
            }
            if let failed = try? await maintenance.failUnknownNames(), failed > 0 {
                db.events?.warning(
                    "tasks failed: no live worker registered their name in time",
                    metadata: ["tasks": "\(failed)", "worker": "\(worker.id)"])
            }
            round += 1
            if round % 30 == 0 { try? await maintenance.forgetDeadWorkers() }
        }
    }

    /// Runs one attempt in the local pool and queues its outcome.
    func execute(_ task: ClaimedTask) async {
        var final = false
        let result = await ClusterTracing.attempt(task, worker: worker.id) {
            await run(task, final: &final)
        }
        let outcome: AttemptOutcome
        switch result {
        case .success(let bytes):
            outcome = AttemptOutcome(
                id: task.id, attempt: task.attempt, output: bytes, error: nil, errorText: "", final: false)
        case .failure(let failed as ChunkItemsFailed):
            // Every item's outcome goes with the failed attempt: a last attempt keeps them.
            db.metrics?.attemptFailed(queue: task.queue)
            var metadata = Logger.Metadata.attempt(task, worker: worker.id)
            metadata["error"] = "\(failed.first)"
            db.events?.notice("attempt failed: an item of the chunk failed", metadata: metadata)
            outcome = AttemptOutcome(
                id: task.id, attempt: task.attempt, output: failed.outcomes,
                error: ErrorEnvelope(failed.first),
                errorText: String(describing: failed.first), final: false)
        case .failure(let error):
            db.metrics?.attemptFailed(queue: task.queue)
            var metadata = Logger.Metadata.attempt(task, worker: worker.id)
            metadata["error"] = "\(error)"
            if final {
                db.events?.error("task payload does not decode: the task fails", metadata: metadata)
            } else {
                db.events?.notice("attempt failed", metadata: metadata)
            }
            outcome = AttemptOutcome(
                id: task.id, attempt: task.attempt, output: nil, error: ErrorEnvelope(error),
                errorText: String(describing: error), final: final)
        }
        core.finished(task, outcome)
    }

    /// Runs one attempt in the local pool (inside the attempt's span, so that the pool's own
    /// span and the task's process join the trace).
    private func run(_ task: ClaimedTask, final: inout Bool) async -> Result<[UInt8], any Error> {
        let result: Result<[UInt8], any Error>
        if let function = worker.functions[task.name] {
            switch function.submit(pool, task.function, task.input) {
            case .failure(.undecodable(let why)):
                result = .failure(
                    ClusterError.undecodablePayload(task: task.id, taskName: task.name, reason: why))
                final = true
            case .failure(.rejected(let error)):
                result = .failure(error)
            case .success(let call):
                if core.attach(call, to: task) {
                    result = await outcome(of: call, timeout: task.timeout, task: task)
                } else {
                    call.cancel()
                    result = .failure(PoolError.cancelled)
                }
            }
        } else {
            result = .failure(ClusterError.unknownTaskName(task.name, waited: .zero))
        }
        return result
    }

    private func outcome(of call: RegisteredFunction.Call, timeout: Duration?, task: ClaimedTask) async
        -> Result<
            [UInt8], any Error
        >
    {
        guard let timeout else { return await call.outcome() }
        return await withTaskGroup(of: Result<[UInt8], any Error>?.self) { group in
            group.addTask { await call.outcome() }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            if let first {
                group.cancelAll()
                return first
            }
            call.cancel()
            while let next = await group.next() { _ = next }
            return .failure(PoolError.timedOut(task: "task \(task.id)", after: timeout, pid: 0))
        }
    }
}
