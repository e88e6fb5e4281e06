import Tracing

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The pool's end of a worker's job socket, `Codable` so it travels inside ``PoolWorker``.
struct WorkerChannel: Codable, Sendable {
    let socket: FramedSocket

    init(socket: FramedSocket) { self.socket = socket }

    func encode(to encoder: any Encoder) throws {
        try MessageIO.encodeHandle(socket, "WorkerChannel", to: encoder)
    }

    init(from decoder: any Decoder) throws {
        socket = try MessageIO.decodeHandle("WorkerChannel", from: decoder)
    }
}

/// The worker side of a pool: an ordinary ``ProcessTask`` whose `run` is the job loop, so a
/// worker is launched, watched and reaped like any child.
struct PoolWorker: ProcessTask {
    var channel: WorkerChannel
    var initializerType: String?
    var initializerPayload: [UInt8]?
    var initializerDescriptors: PassedDescriptors
    /// Where this worker records its stage and the item it is running, for its driver to
    /// read if it dies.
    var ledger: WorkerLedger

    func run() async throws {
        let socket = channel.socket
        if let initializerType, let initializerPayload {
            ledger.stage = .initializing
            guard let type = TypeIdentity.resolve(initializerType) as? any ProcessTask.Type else {
                throw ProcessError.unsupportedTaskType(
                    typeName: initializerType, reason: "no such ProcessTask in this binary")
            }
            let descriptors = DescriptorTransfer.Incoming(initializerDescriptors.take())
            defer { descriptors.closeUnclaimed() }
            try await Self.runInitializer(type, initializerPayload, descriptors)
        }
        ledger.stage = .busy
        try await socket.send(.message, [PoolWire.ready])
        var runners: [UInt64: Result<any JobRunner, ErrorReport>] = [:]
        var writer = ResultWriter(socket: socket)
        var progress = ledger.progress
        // Items sent to this worker so far, numbered as its driver numbers them.
        var itemsSeen: UInt64 = 0
        while true {
            let received: Result<Frame, ChannelError>
            ledger.stage = .idle
            do {
                received = .success(try await socket.receive())
            } catch {
                received = .failure(error)
            }
            ledger.stage = .busy
            guard case .success(let frame) = received else {
                return  // The pool is gone or done with us.
            }
            var reader = WireReader(frame.payload)
            switch try reader.byte() {
            case PoolWire.install:
                let id = try reader.varint()
                let typeName = try reader.string()
                let payload = try reader.data()
                let descriptors = DescriptorTransfer.Incoming(frame.descriptors)
                runners[id] = Self.makeRunner(typeName: typeName, payload: payload, descriptors: descriptors)
                descriptors.closeUnclaimed()
            case PoolWire.jobs:
                writer.begin()
                while !reader.isAtEnd {
                    let word = try reader.varint()
                    let functionID = word >> 1
                    // The low bit: the caller's trace context follows.
                    let carrier = word & 1 == 1 ? try PoolWire.readCarrier(&reader) : nil
                    let count = try reader.count()
                    var run = JobRun(payload: frame.payload)
                    run.ids.reserveCapacity(count)
                    run.itemEnds.reserveCapacity(count)
                    var items = 0
                    for _ in 0..<count {
                        run.ids.append(try reader.varint())
                        let word = try reader.varint()
                        let jobItems = Int(clamping: word >> 1)
                        if word & 1 == 1 {
                            // Items already decided by the pool: not run again.
                            for _ in 0..<(try reader.count()) {
                                let position = try reader.count()
                                guard position < jobItems else {
                                    throw PoolError.protocolError("item \(position) skipped of \(jobItems)")
                                }
                                run.skipped.append(items + position)
                            }
                        }
                        guard jobItems <= frame.payload.count else {
                            throw PoolError.protocolError("a job of \(jobItems) items")
                        }
                        items += jobItems
                        run.itemEnds.append(items)
                    }
                    run.inputs = try reader.blob()
                    progress.base = itemsSeen
                    itemsSeen &+= UInt64(items)
                    switch runners[functionID] {
                    case .success(let runner)? where carrier != nil:
                        try await ServiceContext.withValue(TaskTrace.extract(carrier!)) {
                            try await runner.run(run, progress, &writer)
                        }
                    case .success(let runner)?:
                        try await runner.run(run, progress, &writer)
                    case .failure(let report)?:
                        writer.fail(run.ids[...], report)
                    case nil:
                        writer.fail(
                            run.ids[...],
                            ErrorReport(PoolError.protocolError("function \(functionID) was never installed"))
                        )
                    }
                }
                try await writer.flush()
            case PoolWire.shutdown:
                return
            case let other:
                throw PoolError.protocolError("unknown message \(other) from the pool")
            }
        }
    }

    private static func runInitializer<T: ProcessTask>(
        _ type: T.Type, _ payload: [UInt8], _ descriptors: DescriptorTransfer.Incoming
    ) async throws {
        let task = try TaskCoding.decode(T.self, from: payload, descriptors: descriptors)
        _ = try await task.run()
    }

    private static func makeRunner(
        typeName: String, payload: [UInt8], descriptors: DescriptorTransfer.Incoming
    ) -> Result<any JobRunner, ErrorReport> {
        guard let type = TypeIdentity.resolve(typeName) as? any ProcessFunction.Type else {
            return .failure(
                ErrorReport(
                    ProcessError.unsupportedTaskType(
                        typeName: typeName, reason: "this binary has no ProcessFunction of that name")))
        }
        return runner(for: type, payload, descriptors)
    }

    private static func runner<F: ProcessFunction>(
        for type: F.Type, _ payload: [UInt8], _ descriptors: DescriptorTransfer.Incoming
    ) -> Result<
        any JobRunner, ErrorReport
    > {
        do {
            let function = try TaskCoding.decode(F.self, from: payload, descriptors: descriptors)
            return .success(FunctionRunner(function: function))
        } catch {
            return .failure(ErrorReport(ProcessError.codec(error)))
        }
    }
}

/// One run of a `jobs` frame (see ``PoolWire``): job `k` is items `itemEnds[k - 1] ..< itemEnds[k]`
/// of the `[Input]` encoded at `inputs` in `payload`.
struct JobRun {
    let payload: [UInt8]
    var ids: [UInt64] = []
    var itemEnds: [Int] = []
    var inputs: Range<Int> = 0..<0
    /// Items (counted from the run's first) that the pool already decided: not run.
    var skipped: [Int] = []
}

/// Runs the jobs of one installed function.
protocol JobRunner: Sendable {
    func run(_ run: JobRun, _ progress: _ItemProgress, _ writer: inout ResultWriter) async throws
}

/// What a worker answers for an item it was told to skip; the pool puts the item's real
/// verdict in its place.
struct SkippedItem: Error, Codable {}

/// Builds `results` frames and sends them; a slow job's answer goes out as soon as it is in,
/// so that a crash in the next one is blamed on the right job and finished work is never redone.
struct ResultWriter {
    let socket: FramedSocket
    private(set) var out: [UInt8] = []
    /// When results last went out (or the current `jobs` frame arrived).
    private(set) var lastFlush = ContinuousClock.now

    init(socket: FramedSocket) { self.socket = socket }

    /// Starts on a `jobs` frame.
    mutating func begin() {
        out.removeAll(keepingCapacity: true)
        out.append(PoolWire.results)
        lastFlush = .now
    }

    /// Sends what has been written, if anything.
    mutating func flush() async throws {
        if out.count > 1 { try await socket.send(.message, out) }
        out.removeSubrange(1...)
        lastFlush = .now
    }

    /// Answers every job of `ids` with the same failure.
    mutating func fail(_ ids: ArraySlice<UInt64>, _ report: ErrorReport) {
        let bytes = (try? TaskCoding.encode(report)) ?? []
        WireWriter.appendVarint(UInt64(ids.count), to: &out)
        for id in ids {
            WireWriter.appendVarint(id, to: &out)
            out.append(PoolWire.Status.failed.rawValue)
            WireWriter.appendBlob(bytes, to: &out)
        }
    }

    /// Answers items `items` of job `job` of `run` (whose first item is `firstOfJob`) before the
    /// job has ended: `outputs` are theirs in order, skipping the items in `failures`.
    mutating func partial<Output: Codable>(
        _ run: JobRun, job: Int, items: Range<Int>, firstOfJob: Int, outputs: [Output],
        failures: [(item: Int, error: any Error)]
    ) {
        var outcomes: [ItemOutcome<Output>] = []
        outcomes.reserveCapacity(items.count)
        var nextOutput = 0
        var nextFailure = 0
        for item in items {
            if nextFailure < failures.count, failures[nextFailure].item == item {
                let error = failures[nextFailure].error
                outcomes.append(error is SkippedItem ? .skipped : .error(ErrorReport(error)))
                nextFailure += 1
            } else {
                outcomes.append(.value(outputs[nextOutput]))
                nextOutput += 1
            }
        }
        guard let bytes = try? TaskCoding.encode(outcomes) else { return }  // Answered at the job's end.
        WireWriter.appendVarint(UInt64(1), to: &out)
        WireWriter.appendVarint(run.ids[job], to: &out)
        out.append(PoolWire.Status.partial.rawValue)
        WireWriter.appendVarint(UInt64(items.lowerBound - firstOfJob), to: &out)
        WireWriter.appendBlob(bytes, to: &out)
    }

    /// Answers jobs `first ..< first + ids.count` of `run`, whose items produced `outputs`
    /// (in order, skipping the items in `failures`).
    mutating func answer<Output: Codable>(
        _ run: JobRun, jobs: Range<Int>, outputs: [Output], failures: [(item: Int, error: any Error)]
    ) {
        let mark = out.count
        WireWriter.appendVarint(UInt64(jobs.count), to: &out)
        if failures.isEmpty {
            for k in jobs {
                WireWriter.appendVarint(run.ids[k], to: &out)
                out.append(PoolWire.Status.values.rawValue)
            }
            let blob = WireWriter.beginBlob(&out)
            do {
                try BinaryEncoder().encode(outputs, appendingTo: &out)
                WireWriter.endBlob(&out, at: blob)
            } catch {
                out.removeSubrange(mark...)
                fail(run.ids[jobs], ErrorReport(ProcessError.codec(error)))
            }
            return
        }
        // Some items threw: the jobs that hold them answer item by item.
        var values: [Output] = []
        var anyValues = false
        var nextOutput = 0
        var nextFailure = 0
        for k in jobs {
            let lower = k == 0 ? 0 : run.itemEnds[k - 1]
            let upper = run.itemEnds[k]
            WireWriter.appendVarint(run.ids[k], to: &out)
            guard nextFailure < failures.count, failures[nextFailure].item < upper else {
                values += outputs[nextOutput..<(nextOutput + upper - lower)]
                nextOutput += upper - lower
                anyValues = true
                out.append(PoolWire.Status.values.rawValue)
                continue
            }
            var outcomes: [ItemOutcome<Output>] = []
            outcomes.reserveCapacity(upper - lower)
            for item in lower..<upper {
                if nextFailure < failures.count, failures[nextFailure].item == item {
                    let error = failures[nextFailure].error
                    outcomes.append(error is SkippedItem ? .skipped : .error(ErrorReport(error)))
                    nextFailure += 1
                } else {
                    outcomes.append(.value(outputs[nextOutput]))
                    nextOutput += 1
                }
            }
            do {
                let bytes = try TaskCoding.encode(outcomes)
                out.append(PoolWire.Status.mixed.rawValue)
                WireWriter.appendBlob(bytes, to: &out)
            } catch {
                out.append(PoolWire.Status.failed.rawValue)
                WireWriter.appendBlob(
                    (try? TaskCoding.encode(ErrorReport(ProcessError.codec(error)))) ?? [], to: &out)
            }
        }
        guard anyValues else { return }
        do {
            var encoded: [UInt8] = []
            try BinaryEncoder().encode(values, appendingTo: &encoded)
            WireWriter.appendBlob(encoded, to: &out)
        } catch {
            out.removeSubrange(mark...)
            fail(run.ids[jobs], ErrorReport(ProcessError.codec(error)))
        }
    }
}

/// Runs one function's jobs: one generic decode per run, the per-item loop compiled for the
/// function's type (``ProcessFunction/_callJobs(_:itemEnds:from:until:progress:into:failures:)``), one
/// generic encode per batch of answers.
struct FunctionRunner<F: ProcessFunction>: JobRunner {
    let function: F

    func run(_ run: JobRun, _ progress: _ItemProgress, _ writer: inout ResultWriter) async throws {
        let inputs: [F.Input]
        do {
            inputs = try JobDecoding.decode([F.Input].self, run.payload, run.inputs)
        } catch {
            writer.fail(run.ids[...], ErrorReport(error))
            return
        }
        guard inputs.count == run.itemEnds.last ?? 0 else {
            writer.fail(
                run.ids[...],
                ErrorReport(
                    PoolError.protocolError("\(inputs.count) inputs for \(run.itemEnds.last ?? 0) items")))
            return
        }
        var outputs: [F.Output] = []
        outputs.reserveCapacity(inputs.count)
        var failures: [(item: Int, error: any Error)] = []
        let total = inputs.count
        var item = 0
        // The first job not yet answered, and how far its items were answered in part.
        var job = 0
        var reported = 0
        var skipped = run.skipped[...]
        while item < total {
            let deadline = writer.lastFlush + .milliseconds(1)
            if skipped.isEmpty {
                item = await function._callJobs(
                    inputs, itemEnds: run.itemEnds, from: item, until: deadline, progress: progress,
                    into: &outputs, failures: &failures)
            } else {
                // Rare (a job back from a dead worker): one item at a time, skipping those the
                // pool already has.
                while item < total {
                    if skipped.first == item {
                        skipped.removeFirst()
                        failures.append((item, SkippedItem()))
                        item += 1
                        continue
                    }
                    progress.begin(item)
                    do {
                        outputs.append(try await function(inputs[item]))
                    } catch {
                        failures.append((item, error))
                    }
                    progress.end(item)
                    item += 1
                    if ContinuousClock.now > deadline { break }
                }
            }
            // Whole jobs are answered as such...
            var complete = job
            while complete < run.ids.count, run.itemEnds[complete] <= item { complete += 1 }
            if complete > job {
                let boundary = run.itemEnds[complete - 1]
                let start = job == 0 ? 0 : run.itemEnds[job - 1]
                let failed = failures.prefix { $0.item < boundary }.count
                let produced = boundary - start - failed
                writer.answer(
                    run, jobs: job..<complete, outputs: Array(outputs[..<produced]),
                    failures: Array(failures[..<failed]))
                outputs.removeFirst(produced)
                failures.removeFirst(failed)
                job = complete
                reported = boundary
            }
            guard ContinuousClock.now > deadline else { continue }
            // ...and the finished part of a long one goes too, so it is never redone.
            if job < run.ids.count, item > reported {
                let start = job == 0 ? 0 : run.itemEnds[job - 1]
                let from = max(start, reported)
                writer.partial(
                    run, job: job, items: from..<item, firstOfJob: start, outputs: outputs,
                    failures: failures.filter { $0.item >= from })
                outputs.removeAll(keepingCapacity: true)
                failures.removeAll { $0.item >= from }
                for answered in from..<item { failures.append((answered, SkippedItem())) }
                reported = item
            }
            try await writer.flush()
        }
        // A run of jobs with no items still answers them.
        if job < run.ids.count {
            writer.answer(run, jobs: job..<run.ids.count, outputs: outputs, failures: failures)
        }
    }
}
