import CMultiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Why the pool itself stopped a worker; decides what its in-flight jobs become.
enum StopReason: Sendable {
    case cancelled
    case timedOut(Duration)
    case memory(Int)
    case recycle
    /// It sent something that breaks the pool's protocol.
    case protocolViolation(String)
}

/// One running worker process as its driver sees it.
final class WorkerHandle: Sendable {
    let child: ChildProcess<PoolWorker>
    let socket: FramedSocket
    let pid: Int32
    let ledger: WorkerLedger
    /// Set before the pool signals the worker, so its death is not blamed on a job.
    let stopReason = Mutex<StopReason?>(nil)

    init(child: ChildProcess<PoolWorker>, socket: FramedSocket, pid: Int32, ledger: WorkerLedger) {
        self.child = child
        self.socket = socket
        self.pid = pid
        self.ledger = ledger
    }

    /// Stops the worker for `reason` (only the first reason counts).
    func stop(_ reason: StopReason, grace: Duration) {
        let first = stopReason.withLock { current -> Bool in
            guard current == nil else { return false }
            current = reason
            return true
        }
        guard first else { return }
        switch reason {
        case .cancelled, .memory, .protocolViolation: child.kill()
        case .timedOut, .recycle:
            child.terminate()
            let child = self.child
            Task.detached {
                if try await child.join(timeout: grace) == nil { child.kill() }
            }
        }
    }

    /// Resident set size, from `/proc/<pid>/statm`.
    var residentBytes: Int? {
        guard let text = FileSystem.readText("/proc/\(pid)/statm", limit: 256) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

/// Feeds one worker: takes jobs from the shared queue, sends them in batches, matches the
/// results, and replaces the worker when it dies, times out, grows too large or has done its
/// share. Runs in its own task; nothing else touches it.
final class WorkerDriver {
    let core: PoolCore
    let number: Int
    private var worker: WorkerHandle?
    private var installed: Set<UInt64> = []
    private var inFlight: [PoolJob] = []
    private var inFlightHead = 0
    /// Items of the jobs before `inFlightHead`, counted as the worker counts them (see
    /// `WorkerLedger`).
    private var itemsBeforeHead: UInt64 = 0
    private var jobsDone = 0
    /// How many jobs may wait in the worker's socket: grows while jobs are quick, so trivial
    /// tasks stream; shrinks for slow ones, so the last jobs spread over every worker.
    private var window = 1
    private var sentAt = ContinuousClock.now
    private var ready = false
    /// The job that was running when the worker was found over its memory limit: it fails with
    /// that verdict even if its answer arrives before the kill takes effect.
    private var memoryCulprit: (id: UInt64, resident: Int)?
    private let registry: WorkerRegistry

    init(core: PoolCore, number: Int, registry: WorkerRegistry) {
        self.core = core
        self.number = number
        self.registry = registry
    }

    private var pending: Int { inFlight.count - inFlightHead }

    func run() async {
        while true {
            if core.isTerminated {
                if let worker {
                    worker.stop(.cancelled, grace: .zero)
                    let status = try? await worker.child.join()
                    registry.remove(worker)
                    core.telemetry.workerEnded(pid: worker.pid, cause: nil, status: status)
                }
                for job in inFlight[inFlightHead...] { _ = job.cancel() }
                return
            }
            if worker == nil {
                // A closed (or broken) pool with nothing left needs no new worker.
                if core.isClosed, !(await core.waitForWork()) { return }
                worker = await startWorkerRetrying()
                if worker == nil {
                    // Nothing can start now (out of descriptors, processes, memory): the queued
                    // work fails with the reason, and the next submission tries again.
                    if !(await core.waitForWork()) { return }
                    continue
                }
            }
            guard let worker else { return }
            if core.options.maxTasksPerWorker.map({ jobsDone >= $0 }) ?? false, pending == 0 {
                await retire(worker, reason: .recycle)
                continue
            }
            guard await fill(worker) else {
                worker.child.kill()
                await workerDied(worker)
                continue
            }
            if pending == 0 {
                if await core.waitForWork() { continue }
                // Closed and drained: let the worker finish and go.
                try? await worker.socket.send(.message, [PoolWire.shutdown])
                let status = try? await worker.child.join()
                registry.remove(worker)
                core.telemetry.workerEnded(pid: worker.pid, cause: nil, status: status)
                return
            }
            await awaitResults(worker)
        }
    }

    /// Starts a worker, trying a few times over about a quarter of a second; when every try
    /// fails, fails the queued work with the reason and returns `nil`.
    private func startWorkerRetrying() async -> WorkerHandle? {
        var lastError: (any Error)?
        for pause in [0, 20, 200] {
            // Not `Task.sleep`: at the descriptor limit, libdispatch traps if this would be the
            // first timer of the process (it needs descriptors for its timers).
            if pause > 0 { await WaitTimer.sleep(for: .milliseconds(pause)) }
            if core.isTerminated { return nil }
            do {
                return try await startWorker()
            } catch ProcessError.sandbox(let error) {
                // The same every time: no point trying again.
                core.failQueued(.sandbox(error))
                return nil
            } catch {
                lastError = error
                core.telemetry.workerStartFailed(error)
            }
        }
        core.failQueued(
            PoolError.workerStartFailed(
                lastError.map { "\($0)" } ?? "unknown", cause: lastError.flatMap(Self.systemCause)))
        return nil
    }

    private func startWorker() async throws -> WorkerHandle {
        let core = self.core
        let number = self.number
        // Starting a child waits for the launcher and writes the whole task: on a thread of its
        // own (``BlockingThreads``), never on one of Swift's cooperative threads (a pool replacing workers under a
        // stream of kills would otherwise stall every other task of the process).
        let handle = try await BlockingThreads.shared.run { try Self.launch(core: core, number: number) }
        registry.add(handle)
        core.telemetry.workerStarted(pid: handle.pid, number: number)
        installed = []
        itemsBeforeHead = 0
        jobsDone = 0
        window = 1
        ready = false
        memoryCulprit = nil
        return handle
    }

    /// The system call behind a failed start, if one failed.
    private static func systemCause(_ error: any Error) -> SystemError? {
        switch error {
        case let error as SystemError: error
        case ProcessError.launchFailed(let error): error
        case ChannelError.system(let error): error
        case SharedMemoryError.system(let error): error
        default: nil
        }
    }

    private static func launch(core: PoolCore, number: Int) throws -> WorkerHandle {
        let (mine, theirs) = try FramedSocket.pair()
        let options = core.options
        let ledger = try WorkerLedger()
        let task = PoolWorker(
            channel: WorkerChannel(socket: theirs), initializerType: options.initializer?.typeName,
            initializerPayload: options.initializer?.payload,
            initializerDescriptors: options.initializer?.descriptors ?? PassedDescriptors([]), ledger: ledger)
        let child = try ChildProcess(
            task, name: "PoolWorker-\(number)", startMethod: options.startMethod,
            environment: options.environment, logger: core.telemetry.logger,
            forwardsLogs: options.forwardsWorkerLogs, sandbox: options.sandbox)
        try child.start()
        return WorkerHandle(child: child, socket: mine, pid: child.pid ?? 0, ledger: ledger)
    }

    /// Sends as many jobs as the window allows, with any function installs they need.
    /// Returns `false` when the worker cannot be written to (it is dying): the caller learns
    /// how it ended and settles the jobs it had.
    private func fill(_ worker: WorkerHandle) async -> Bool {
        // At most 256 jobs a frame; with a wider window a second frame waits in the worker's
        // socket while the first one's results are handled here.
        var room = min(256, (core.options.taskTimeout == nil ? window : 1) - pending)
        if let limit = core.options.maxTasksPerWorker { room = min(room, limit - jobsDone - pending) }
        guard room > 0 else { return true }
        let jobs = core.take(max: room).filter { $0.markRunning(on: worker.pid) }
        guard !jobs.isEmpty else { return true }
        core.telemetry.running(jobs, pid: worker.pid)
        // Runs: stretches of jobs of one batch, each with its inputs in one piece.
        var frame: [UInt8] = [PoolWire.jobs]
        var sent: [PoolJob] = []
        sent.reserveCapacity(jobs.count)
        var start = 0
        while start < jobs.count {
            let batch = jobs[start].batch
            var end = start + 1
            while end < jobs.count, jobs[end].batch === batch { end += 1 }
            let run = jobs[start..<end]
            start = end
            if !installed.contains(batch.function.id) {
                // Installs travel in their own frames, ahead of the jobs that need them.
                let function = batch.function
                var install: [UInt8] = [PoolWire.install]
                WireWriter.appendVarint(function.id, to: &install)
                WireWriter.appendString(function.typeName, to: &install)
                WireWriter.appendBytes(function.payload, to: &install)
                installed.insert(function.id)
                do {
                    try await worker.socket.send(.message, install, descriptors: function.descriptors)
                } catch {
                    core.requeue(sent + jobs[run.startIndex...])
                    return false
                }
            }
            if Self.append(run, to: &frame) == nil {
                sent += run
            } else {
                // Some input cannot be encoded: those jobs fail, the others go.
                var good: [PoolJob] = []
                for job in run {
                    var scratch: [UInt8] = []
                    do throws(CodecError) {
                        try batch.appendInputs(of: [job], to: &scratch)
                        good.append(job)
                    } catch {
                        job.fail(ProcessError.codec(error))
                    }
                }
                if let error = good.isEmpty ? nil : Self.append(good[...], to: &frame) {
                    for job in good { job.fail(ProcessError.codec(error)) }
                } else {
                    sent += good
                }
            }
        }
        guard !sent.isEmpty else { return true }
        if pending == 0 { sentAt = .now }
        inFlight.append(contentsOf: sent)
        do {
            try await worker.socket.send(.message, frame)
        } catch {
            return false  // In flight: settled by `workerDied`.
        }
        return true
    }

    /// Appends one run of a `jobs` frame (see ``PoolWire``). When the inputs cannot be encoded,
    /// returns why and leaves `frame` as it was.
    private static func append(_ run: ArraySlice<PoolJob>, to frame: inout [UInt8]) -> CodecError? {
        let mark = frame.count
        let batch = run[run.startIndex].batch
        // The low bit: the run's trace context follows (a run holds jobs of one batch).
        WireWriter.appendVarint(batch.function.id << 1 | (batch.trace == nil ? 0 : 1), to: &frame)
        if let trace = batch.trace { PoolWire.appendCarrier(trace.carrier, to: &frame) }
        WireWriter.appendVarint(UInt64(run.count), to: &frame)
        for job in run {
            WireWriter.appendVarint(job.id, to: &frame)
            let skipped = job.skippedItems
            WireWriter.appendVarint(UInt64(job.itemCount) << 1 | (skipped.isEmpty ? 0 : 1), to: &frame)
            if !skipped.isEmpty {
                WireWriter.appendVarint(UInt64(skipped.count), to: &frame)
                for position in skipped { WireWriter.appendVarint(UInt64(position), to: &frame) }
            }
        }
        let blob = WireWriter.beginBlob(&frame)
        do {
            try batch.appendInputs(of: run, to: &frame)
        } catch {
            frame.removeSubrange(mark...)
            return error
        }
        WireWriter.endBlob(&frame, at: blob)
        return nil
    }

    private func awaitResults(_ worker: WorkerHandle) async {
        let options = core.options
        var wait: Duration? = nil
        if let timeout = options.taskTimeout { wait = timeout - (ContinuousClock.now - sentAt) }
        if options.memoryLimit != nil {
            wait = min(wait ?? options.memoryCheckInterval, options.memoryCheckInterval)
        }
        if worker.stopReason.withLock({ $0 != nil }) { wait = nil }  // Stopping: wait for it to go.
        let frame: Frame
        do {
            frame = try await worker.socket.receive(timeout: wait.map { max($0, .milliseconds(1)) })
        } catch .peerClosed {
            await workerDied(worker)
            return
        } catch .timedOut {
            if let timeout = options.taskTimeout, ContinuousClock.now - sentAt >= timeout {
                worker.stop(.timedOut(timeout), grace: options.terminationGrace)
            } else if let limit = options.memoryLimit, let resident = worker.residentBytes, resident > limit {
                if pending > 0 { memoryCulprit = (inFlight[inFlightHead].id, resident) }
                worker.stop(.memory(resident), grace: options.terminationGrace)
            }
            return
        } catch {
            // A malformed frame, or more descriptors than a frame may carry: the worker broke
            // the protocol and cannot be trusted with another job.
            worker.stop(.protocolViolation("\(error)"), grace: .zero)
            await workerDied(worker)
            return
        }
        do {
            try handle(frame, from: worker)
        } catch {
            worker.stop(.protocolViolation("\(error)"), grace: .zero)
            await workerDied(worker)
            return
        }
        if let limit = options.memoryLimit, let resident = worker.residentBytes, resident > limit {
            if pending == 0 {
                await retire(worker, reason: .memory(resident))
            } else {
                worker.stop(.memory(resident), grace: options.terminationGrace)
            }
        }
    }

    private func handle(_ frame: Frame, from worker: WorkerHandle) throws {
        var reader = WireReader(frame.payload)
        switch try reader.byte() {
        case PoolWire.ready:
            ready = true
            core.workerReady()
        case PoolWire.results:
            let started = sentAt
            var count = 0
            while !reader.isAtEnd {
                guard let run = try readRun(&reader, frame.payload, worker) else { continue }
                run.entries[0].job.batch.deliver(run)
                core.finished(run.claimedCount)
                count += run.entries.count
            }
            if inFlightHead == inFlight.count {
                inFlight.removeAll(keepingCapacity: true)
                inFlightHead = 0
            }
            sentAt = .now
            // Judge by time per job: only jobs much shorter than a wake-up are worth queueing
            // ahead; longer ones are handed out one by one so that the last spread evenly.
            let perJob = (ContinuousClock.now - started) / max(1, count)
            if perJob < .microseconds(100) {
                window = min(window * 2, 1024)
            } else if perJob > .milliseconds(1) {
                window = 1
            }
        case let other:
            throw PoolError.protocolError("unknown message \(other) from a worker")
        }
    }

    /// Reads one run of a `results` frame and claims its jobs. Nothing is claimed unless the
    /// whole run is well-formed. A partial answer is recorded in its job, and gives `nil`.
    private func readRun(_ reader: inout WireReader, _ payload: [UInt8], _ worker: WorkerHandle) throws
        -> ResultRun?
    {
        let n = try reader.count()
        guard n > 0, n <= pending else { throw PoolError.protocolError("a run of \(n) results") }
        if n == 1, reader.byteAfterVarint() == PoolWire.Status.partial.rawValue {
            let job = inFlight[inFlightHead]
            guard try reader.varint() == job.id else {
                throw PoolError.protocolError("a partial answer for a job that is not running")
            }
            _ = try reader.byte()
            let first = Int(clamping: try reader.varint())
            let blob = try reader.blob()
            let results = try job.batch.partialResults(payload, blob)
            guard first + results.count <= job.itemCount else {
                throw PoolError.protocolError("a partial answer past its job's items")
            }
            var settled: [(position: Int, result: Result<any Sendable, any Error>)] = []
            for (k, result) in results.enumerated() {
                if let result { settled.append((first + k, result)) }
            }
            job.settle(settled)
            return nil
        }
        var entries: [ResultRun.Entry] = []
        entries.reserveCapacity(n)
        var anyValues = false
        for k in 0..<n {
            let jobID = try reader.varint()
            guard let status = PoolWire.Status(rawValue: try reader.byte()), status != .partial else {
                throw PoolError.protocolError("bad result status")
            }
            let job = inFlight[inFlightHead + k]
            guard job.id == jobID else {
                throw PoolError.protocolError("result for job \(jobID) out of order")
            }
            guard job.batch === inFlight[inFlightHead].batch else {
                throw PoolError.protocolError("a run of results spans jobs of two batches")
            }
            var blob = 0..<0
            if status == .values {
                anyValues = true
            } else {
                blob = try reader.blob()
            }
            entries.append(
                ResultRun.Entry(job: job, status: status, blob: blob, claimed: false, override: nil))
        }
        let values = anyValues ? try reader.blob() : nil
        inFlightHead += n
        jobsDone += n
        for k in entries.indices {
            let job = entries[k].job
            itemsBeforeHead &+= UInt64(job.itemCount)
            entries[k].itemOverrides = job.settledItems
            job.runningOn.store(0, ordering: .releasing)
            if let culprit = memoryCulprit, culprit.id == job.id {
                entries[k].override = memoryError(job, culprit.resident, worker)
            }
            entries[k].claimed = job.claim()
            if entries[k].claimed {
                let failed = entries[k].override ?? (entries[k].status == .values ? nil : SomeItemsFailed())
                core.telemetry.ended(job, error: failed, answered: entries[k].override == nil)
            }
        }
        return ResultRun(payload: payload, entries: entries, values: values)
    }

    /// The worker is gone (or going): learn how it ended, settle its jobs, forget it.
    ///
    /// Only the item that was running when it died (read from its ledger) is blamed; every
    /// other unanswered item goes back to the queue, whether it was not yet started or had
    /// finished without its answer leaving the worker.
    private func workerDied(_ worker: WorkerHandle) async {
        let status = (try? await worker.child.join()) ?? .signaled(.kill)
        self.worker = nil
        registry.remove(worker)
        core.telemetry.workerEnded(
            pid: worker.pid, cause: Self.cause(of: worker, status: status, ready: ready), status: status)
        let jobs = Array(inFlight[inFlightHead...])
        let firstItem = itemsBeforeHead
        inFlight.removeAll()
        inFlightHead = 0
        itemsBeforeHead = 0
        let reason = worker.stopReason.withLock { $0 }
        let live = jobs.filter { !$0.isCancelled }
        let blame = WorkerLossPolicy.blame(
            stage: worker.ledger.stage, wasReady: ready, stoppedByPool: reason != nil,
            runningItem: worker.ledger.runningItem, firstUnanswered: firstItem,
            itemCounts: jobs.map(\.itemCount))
        let job: PoolJob
        let item: Int?
        switch blame {
        case .startup(let initializing):
            core.requeue(live)
            await startupFailed(worker, status: status, initializing: initializing)
            return
        case .nobody:
            core.requeue(live)
            return
        case .job(let index, let running):
            job = jobs[index]
            item = running
        }
        guard !job.isCancelled else {
            core.requeue(live)
            return
        }
        let others = live.filter { $0 !== job }
        let label = item.map { job.itemLabel($0) } ?? job.label
        if let reason { core.telemetry.workerStopped(pid: worker.pid, task: label, reason: reason) }
        var verdict: (any Error)?
        switch reason {
        case .cancelled?, .recycle?:
            break
        case .timedOut(let after)?:
            verdict = PoolError.timedOut(task: label, after: after, pid: worker.pid)
        case .memory(let resident)?:
            if let answered = memoryCulprit, answered.id != job.id,
                !jobs.contains(where: { $0.id == answered.id })
            {
                break  // The over-limit job already got its verdict when its answer came in.
            }
            verdict = PoolError.memoryLimitExceeded(
                task: label, residentBytes: resident, limit: core.options.memoryLimit ?? 0, pid: worker.pid)
        case .protocolViolation(let why)?:
            verdict = PoolError.protocolError(
                "worker \(worker.pid) running task \(label) broke the protocol: \(why)")
        case nil:
            let killed = job.countKill(ofItem: item ?? 0)
            let fails = WorkerLossPolicy.failsAfterKill(kills: killed, options: core.options)
            core.telemetry.workerLost(
                pid: worker.pid, task: label, attempt: killed, status: status,
                crashReport: { worker.child.crashReport },
                standardErrorTail: { worker.child.standardErrorTail },
                willRetry: !fails, poisoned: fails && killed >= core.options.maxWorkersKilledPerTask)
            if fails {
                verdict = PoolError.workerLost(
                    WorkerLoss(
                        task: label, pid: worker.pid, status: status,
                        standardErrorTail: worker.child.standardErrorTail, workersKilled: killed,
                        crashReport: worker.child.crashReport, sandboxVerdict: worker.child.sandboxVerdict))
            }
        }
        guard let verdict else {
            core.requeue([job] + others)
            return
        }
        if let item, job.itemCount > 1 {
            // The unit of failure is the item: the job goes back with this one decided.
            _ = job.settle(item: item, verdict)
            core.requeue([job] + others)
        } else {
            job.fail(verdict)
            core.requeue(others)
        }
    }

    /// A worker died before it was ready. Only an initializer that fails — throws, or ends
    /// its worker other than by `SIGKILL` — time after time may fail the work; a worker killed
    /// while starting (the OOM killer, an operator) is simply replaced.
    private func startupFailed(_ worker: WorkerHandle, status: ExitStatus, initializing: Bool) async {
        var why = "\(status)"
        do {
            try await worker.child.value
        } catch {
            why = "\(error)"
        }
        let failure = WorkerLossPolicy.startupFailure(initializing: initializing, status: status)
        switch failure {
        case .initializer:
            let givesUp = WorkerLossPolicy.givesUp(after: failure, inARow: core.initializerFailed())
            core.telemetry.initializerFailed(why, brokePool: givesUp)
            if givesUp {
                core.breakPool(why)
            }
        case .lost:
            if WorkerLossPolicy.givesUp(after: failure, inARow: core.startupLost()) {
                // Something kills every worker it starts: fail what waits, and start afresh.
                core.workerReady()
                core.failQueued(
                    PoolError.workerStartFailed(
                        "\(PoolCore.startupAttempts) workers in a row died while starting; the last \(why)",
                        cause: nil))
            }
        }
    }

    private func memoryError(_ job: PoolJob, _ resident: Int, _ worker: WorkerHandle) -> PoolError {
        .memoryLimitExceeded(
            task: job.label, residentBytes: resident, limit: core.options.memoryLimit ?? 0,
            pid: worker.pid)
    }

    /// Ends a worker between jobs (recycling), waiting for it to go.
    private func retire(_ worker: WorkerHandle, reason: StopReason) async {
        worker.stopReason.withLock { $0 = reason }
        try? await worker.socket.send(.message, [PoolWire.shutdown])
        let status = try? await worker.child.join(timeout: core.options.terminationGrace)
        if status == nil {
            worker.child.kill()
            _ = try? await worker.child.join()
        }
        registry.remove(worker)
        core.telemetry.workerStopped(pid: worker.pid, task: nil, reason: reason)
        core.telemetry.workerEnded(
            pid: worker.pid, cause: Self.cause(of: reason), status: worker.child.exitStatus)
        self.worker = nil
    }
}

/// The pool's live workers, so that cancelling a job can find the process running it and
/// `terminate` can stop them all.
final class WorkerRegistry: Sendable {
    private let workers = Mutex<[Int32: WorkerHandle]>([:])

    func add(_ worker: WorkerHandle) { workers.withLock { $0[worker.pid] = worker } }
    func remove(_ worker: WorkerHandle) { workers.withLock { _ = $0.removeValue(forKey: worker.pid) } }
    func worker(_ pid: Int32) -> WorkerHandle? { workers.withLock { $0[pid] } }
    var all: [WorkerHandle] { workers.withLock { Array($0.values) } }
    var pids: [Int32] { workers.withLock { Array($0.keys) } }
}

extension WorkerDriver {
    /// Why a worker ended, for the restart metric.
    fileprivate static func cause(of worker: WorkerHandle, status: ExitStatus, ready: Bool)
        -> PoolMetrics.RestartCause
    {
        if let reason = worker.stopReason.withLock({ $0 }) { return cause(of: reason) }
        if !ready { return .startup }
        if case .exited = status { return .exit }
        return .crash
    }

    fileprivate static func cause(of reason: StopReason) -> PoolMetrics.RestartCause {
        switch reason {
        case .cancelled: .cancelled
        case .timedOut: .timeout
        case .memory: .memoryLimit
        case .recycle: .recycle
        case .protocolViolation: .protocolError
        }
    }
}

/// A job answered with some of its items failed (their errors go to the caller): what its
/// span and the failure metric record.
struct SomeItemsFailed: Error, CustomStringConvertible {
    var description: String { "some of the task's items failed" }
}
