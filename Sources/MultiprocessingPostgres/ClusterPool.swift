import Multiprocessing
import PostgresNIO
import ServiceLifecycle

/// A process pool whose workers are ``ClusterWorker``s on any number of hosts, coordinated
/// through PostgreSQL: the verbs of `ProcessPool`, with the same typed results
/// and errors.
///
/// ```swift
/// try await withClusterPool(configuration: try ClusterConfiguration(url: url)) { pool in
///     let y = try await pool.apply(Square(), 5)                       // apply
///     let future = try await pool.submit(Square(), 10)                // a ClusterFuture: await, value(timeout:), cancel()
///     let ys = try await pool.map(Square(), over: 0..<100_000)        // enqueued in bulk
///     let all = try await pool.mapResults(Parse(), over: lines)       // one Result per item
///     for try await y in pool.unorderedMap(Square(), over: hugeLazySequence) { }   // bounded memory
/// }
/// ```
///
/// Tasks and results live in the database: a task runs at least once (again on another worker
/// when its worker host dies), its result is recorded exactly once, and a producer that dies
/// loses nothing: ``result(of:as:)`` reads a result later, from any process. An error thrown by
/// the function comes back as the same value when its type is `Codable` (and this binary has
/// it), otherwise as a `RemoteError`; a crash, a time-out or a memory limit on the worker host
/// as the `PoolError` the local pool gave. Results arrive through
/// `LISTEN/NOTIFY`, with polling as the fallback.
///
/// The pool needs its ``run()`` running (``withClusterPool(configuration:defaults:isolation:_:)`` does
/// that), as postgres-nio's client does; it is a swift-service-lifecycle `Service`.
public final class ClusterPool: Service, Sendable {
    /// The queue.
    public let configuration: ClusterConfiguration
    /// The options calls use when they pass none.
    public let defaults: ClusterTaskOptions
    let db: ClusterDatabase
    let router = ResultRouter()
    let started = Gate<Void>()

    /// A pool on `configuration`'s queue. Nothing connects before ``run()``.
    public init(configuration: ClusterConfiguration, defaults: ClusterTaskOptions = ClusterTaskOptions()) {
        self.configuration = configuration
        self.defaults = defaults
        db = ClusterDatabase(configuration: configuration, label: "pool")
    }

    /// Connects, creates or upgrades the schema, and delivers results until cancelled (or a
    /// graceful shutdown). Calls made before it is ready wait for it.
    public func run() async throws {
        let db = self.db
        let router = self.router
        let clientTask = db.startClient()
        defer { clientTask.cancel() }
        do {
            try await db.migrate()
            started.open(.success(()))
        } catch {
            started.open(.failure(error))
            throw error
        }
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await router.listen(db) }
                group.addTask { await router.fetch(db) }
            }
        }
    }

    func ready() async throws {
        do {
            try await started.value()
        } catch is CancellationError {
            throw PoolError.cancelled
        }
    }

    // MARK: One task

    /// Runs `function(input)` on a worker and returns its result.
    public func apply<F: ProcessFunction>(_ function: F, _ input: F.Input, options: ClusterTaskOptions? = nil)
        async throws -> F.Output
    {
        try await submit(function, input, options: options).value
    }

    /// Queues `function(input)` and returns a future of its result once the task is stored.
    ///
    /// With a ``ClusterTaskOptions/deduplicationKey`` that a queued or running task of the same
    /// queue already has, the future is that task's.
    public func submit<F: ProcessFunction>(
        _ function: F, _ input: F.Input, options: ClusterTaskOptions? = nil
    )
        async throws -> ClusterFuture<F.Output>
    {
        let options = options ?? defaults
        let ids = try await enqueue(function, [input], options: options)
        let future = ClusterFuture<F.Output>(id: ClusterTaskID(ids[0]), pool: self)
        future.attach(fetchNow: options.deduplicationKey != nil)
        return future
    }

    /// A future of task `id`'s result, read from the queue: the same task from another
    /// process, or after this producer restarted. `type` is the function type it was
    /// submitted with.
    ///
    /// - Throws: ``ClusterError/noSuchTask(_:)`` when the queue has no such task.
    public func result<F: ProcessFunction>(of id: ClusterTaskID, as type: F.Type) async throws
        -> ClusterFuture<
            F.Output
        >
    {
        try await ready()
        let db = self.db
        let exists = try await db.retrying("looking up a task") {
            var found = false
            for try await _ in try await db.client.query(
                "SELECT 1 FROM \(unescaped: db.schema).tasks WHERE id = \(id.rawValue)", logger: db.logger
            ) {
                found = true
            }
            return found
        }
        guard exists else { throw ClusterError.noSuchTask(id.rawValue) }
        let future = ClusterFuture<F.Output>(id: id, pool: self)
        future.attach(fetchNow: true)
        return future
    }

    /// Cancels tasks by id: queued ones never run, running ones are stopped by their workers.
    /// Returns how many were still queued or running (finished tasks keep their results).
    @discardableResult
    public func cancel(_ ids: [ClusterTaskID]) async throws -> Int {
        try await ready()
        return try await ClusterAdmin.cancel(ids.map(\.rawValue), db: db)
    }

    // MARK: Many tasks

    /// `function` over every input, results in input order. The inputs are stored in a few
    /// multi-row statements, not one round trip per item. The first failing item's error is
    /// thrown (the rest is cancelled); ``mapResults(_:over:chunkSize:options:progress:)`` keeps
    /// going.
    ///
    /// Inputs travel in chunks, as with `ProcessPool.map`: a chunk is one task on the queue,
    /// run by one worker host as one job of its local pool, one attempt for all its items. Its
    /// inputs, and their results, are stored in one row: fewer rows, claims and notifications
    /// per item, so short items are many times faster (see BENCHMARKS.md). An item that fails
    /// fails its chunk's attempt, and the whole chunk is tried again while
    /// ``ClusterTaskOptions/maxAttempts`` allows (its other items run again: at least once);
    /// after the last attempt every item has its own outcome. ``ClusterTaskOptions/timeout``
    /// bounds a chunk's attempt. `chunkSize`: items per chunk; `nil` picks CPython's rule for
    /// `Pool.map` (about four chunks per live worker slot serving the queue), at most 64 items,
    /// and a chunk also ends once its inputs reach 64 KiB; with no live worker, one task per
    /// item (however many workers come later, all get work); `1` stores one task per item.
    public func map<F: ProcessFunction, Inputs: Sequence>(
        _ function: F, over inputs: Inputs, chunkSize: Int? = nil, options: ClusterTaskOptions? = nil,
        progress: (@Sendable (PoolProgress) -> Void)? = nil
    ) async throws -> [F.Output] where Inputs.Element == F.Input {
        let results = try await run(
            function, Array(inputs), chunkSize: chunkSize, options: options, failFast: true,
            progress: progress)
        return try results.map { try $0.get() }
    }

    /// Like ``map(_:over:chunkSize:options:progress:)``, but every item gets its own result, so
    /// one failure never stops the batch.
    public func mapResults<F: ProcessFunction, Inputs: Sequence>(
        _ function: F, over inputs: Inputs, chunkSize: Int? = nil, options: ClusterTaskOptions? = nil,
        progress: (@Sendable (PoolProgress) -> Void)? = nil
    ) async throws -> [Result<F.Output, any Error>] where Inputs.Element == F.Input {
        try await run(
            function, Array(inputs), chunkSize: chunkSize, options: options, failFast: false,
            progress: progress)
    }

    /// Results in input order as they become available, consuming `inputs` lazily with at most
    /// `window` tasks on the queue at once, so an endless input runs in bounded memory.
    public func orderedMap<F: ProcessFunction, Inputs: Sequence>(
        _ function: F, over inputs: Inputs, options: ClusterTaskOptions? = nil, window: Int = 1000
    ) -> ClusterMapSequence<F, Inputs> where Inputs.Element == F.Input {
        ClusterMapSequence(
            pool: self, function: function, inputs: inputs, options: options ?? defaults, window: window,
            ordered: true)
    }

    /// Results in completion order, consuming `inputs` lazily (see
    /// ``orderedMap(_:over:options:window:)``).
    public func unorderedMap<F: ProcessFunction, Inputs: Sequence>(
        _ function: F, over inputs: Inputs, options: ClusterTaskOptions? = nil, window: Int = 1000
    ) -> ClusterMapSequence<F, Inputs> where Inputs.Element == F.Input {
        ClusterMapSequence(
            pool: self, function: function, inputs: inputs, options: options ?? defaults, window: window,
            ordered: false)
    }

    private func run<F: ProcessFunction>(
        _ function: F, _ items: [F.Input], chunkSize: Int?, options: ClusterTaskOptions?, failFast: Bool,
        progress: (@Sendable (PoolProgress) -> Void)?
    ) async throws -> [Result<F.Output, any Error>] {
        var options = options ?? defaults
        options.deduplicationKey = nil
        let collector = MapCollector<F.Output>(count: items.count, failFast: failFast, progress: progress)
        var keys: [(Int64, Int)] = []
        var ids: [Int64] = []
        let cancelAll = { @Sendable [weak self] (ids: [Int64]) in
            guard let self, !ids.isEmpty else { return }
            Task { _ = try? await ClusterAdmin.cancel(ids, db: self.db) }
        }
        do {
            try await withTaskCancellationHandler {
                let size: Int
                if let chunkSize {
                    size = max(1, chunkSize)
                } else if items.count > 1 {
                    size = MapChunk.automaticSize(
                        items: items.count, slots: try await liveSlots(options.queue))
                } else {
                    size = 1
                }
                if size == 1 {
                    var start = 0
                    while start < items.count {
                        let end = min(start + Self.insertBatch, items.count)
                        let batchIDs = try await enqueue(
                            function, Array(items[start..<end]), options: options)
                        for (offset, id) in batchIDs.enumerated() {
                            let index = start + offset
                            keys += router.wait(for: [id]) { row in
                                collector.deliver(index, row.outcome(as: F.Output.self))
                            }
                        }
                        ids += batchIDs
                        start = end
                    }
                } else {
                    let encoded = try encodeInputs(items)
                    let ranges = MapChunk.ranges(sizes: encoded.map(\.count), size: size)
                    var first = 0
                    while first < ranges.count {
                        let batch = ranges[first..<min(first + Self.insertBatch, ranges.count)]
                        let chunks = try batch.map { range in
                            do {
                                return try BinaryEncoder().encode(Array(encoded[range])).buffer
                            } catch {
                                throw ClusterError.encodingFailed("\(error)")
                            }
                        }
                        let batchIDs = try await store(
                            name: clusterChunkName(of: F.self), function: function, inputs: chunks,
                            items: batch.reduce(0) { $0 + $1.count }, options: options)
                        for (range, id) in zip(batch, batchIDs) {
                            keys += router.wait(for: [id]) { row in
                                let outcomes = MapChunk.outcomes(
                                    of: row, count: range.count, as: F.Output.self)
                                for (offset, outcome) in outcomes.enumerated() {
                                    collector.deliver(range.lowerBound + offset, outcome)
                                }
                            }
                        }
                        ids += batchIDs
                        first = batch.endIndex
                    }
                }
                try await collector.done.value()
            } onCancel: {
                collector.cancel()
            }
        } catch {
            router.forget(keys)
            cancelAll(ids)
            throw error is CancellationError ? PoolError.cancelled : error
        }
        if collector.failedEarly {
            router.forget(keys)
            cancelAll(ids)
        }
        return collector.results
    }

    /// The worker slots of live workers that serve `queue` (the automatic chunk size's pool).
    private func liveSlots(_ queue: String) async throws -> Int {
        try await ready()
        let db = self.db
        return try await db.retrying("counting live workers") {
            var slots = 0
            for try await sum in try await db.client.query(
                """
                SELECT coalesce(sum(concurrency), 0)::bigint FROM \(unescaped: db.schema).workers
                WHERE \(queue) = ANY(queues) AND NOT stopping
                    AND heartbeat_at > now() - lease_ms * interval '1 ms'
                """, logger: db.logger
            ).decode(Int64.self) {
                slots = Int(sum)
            }
            return slots
        }
    }

    /// Rows per insert statement.
    static let insertBatch = 2000

    // MARK: Storing tasks

    /// Stores one task per input and returns their ids in input order. Safe to repeat after a
    /// lost connection: rows are keyed by a random batch id and their index in it.
    func enqueue<F: ProcessFunction>(_ function: F, _ inputs: [F.Input], options: ClusterTaskOptions)
        async throws
        -> [Int64]
    {
        let inputBytes = try encodeInputs(inputs).map(\.buffer)
        return try await store(
            name: clusterTaskName(of: F.self), function: function, inputs: inputBytes, items: inputs.count,
            options: options)
    }

    /// Each input's encoding.
    private func encodeInputs<Input: Encodable>(_ inputs: [Input]) throws -> [[UInt8]] {
        var encoder = BinaryEncoder()
        encoder.maximumDepth = 32
        do {
            return try inputs.map { try encoder.encode($0) }
        } catch {
            throw ClusterError.encodingFailed("\(error)")
        }
    }

    /// Stores one task per encoded input (`items`: how many map items they carry, for the
    /// trace) and returns their ids in order.
    private func store<F: ProcessFunction>(
        name: String, function: F, inputs inputBytes: [ByteBuffer], items: Int, options: ClusterTaskOptions
    ) async throws -> [Int64] {
        try await ready()
        let functionBytes: [UInt8]
        do {
            functionBytes = try BinaryEncoder().encode(function)
        } catch {
            throw ClusterError.encodingFailed("\(error)")
        }
        guard !inputBytes.isEmpty else { return [] }
        var random = SystemRandomNumberGenerator()
        let batch = Int64(bitPattern: random.next())
        let indices = (0..<Int32(inputBytes.count)).map { $0 }
        let db = self.db
        let s = db.schema
        let delay = options.runAfter?.milliseconds ?? 0
        let timeout = options.timeout?.milliseconds
        let unknown = options.unknownNameTimeout.milliseconds
        let function = functionBytes.buffer
        let queue = options.queue
        let priority = options.priority
        let dedup = options.deduplicationKey
        let maxAttempts = Int32(max(1, options.maxAttempts))
        let inputsToBind = inputBytes
        let trace = ClusterTracing.beginEnqueue(name: name, queue: queue, count: items)
        let traceContext = trace.flatMap { try? BinaryEncoder().encode($0.carrier).buffer }
        do {
            let ids = try await store()
            trace?.end()
            db.metrics?.submitted(ids.count, queue: queue)
            return ids
        } catch {
            trace?.end(error: error)
            throw error
        }

        @Sendable func store() async throws -> [Int64] {
            while true {
                let found = try await db.retryingCounted("storing tasks") { attempt -> [Int32: Int64] in
                    var found: [Int32: Int64] = [:]
                    let insert = WorkerStatements.InsertTasks(
                        queue: queue, name: name, function: function, priority: priority,
                        delayMilliseconds: delay,
                        deduplicationKey: dedup, maxAttempts: maxAttempts, timeoutMilliseconds: timeout,
                        unknownNameTimeoutMilliseconds: unknown, batch: batch, traceContext: traceContext,
                        inputs: inputsToBind, indices: indices)
                    for try await (id, index) in try await db.client.execute(insert, logger: db.logger) {
                        found[index] = id
                    }
                    if found.count < indices.count {
                        // Stored by an earlier try whose answer was lost, or a duplicate key.
                        for try await (id, index) in try await db.client.query(
                            """
                            SELECT id, batch_index FROM \(unescaped: s).tasks WHERE batch_id = \(batch)
                            """, logger: db.logger
                        ).decode((Int64, Int32).self) {
                            found[index] = id
                        }
                        if let dedup, found[0] == nil {
                            for try await id in try await db.client.query(
                                """
                                SELECT id FROM \(unescaped: s).tasks
                                WHERE queue = \(queue) AND dedup_key = \(dedup) AND state IN ('queued','running')
                                """, logger: db.logger
                            ).decode(Int64.self) {
                                found[0] = id
                            }
                        }
                    }
                    return found
                }
                // A duplicate that finished between the insert and the look-up: insert again.
                if found.count == indices.count { return indices.map { found[$0]! } }
            }
        }
    }
}

/// Runs `body` with a running ``ClusterPool`` on `configuration`'s queue, then stops it (tasks
/// still queued stay queued: their results can be read later by id).
public func withClusterPool<Result>(
    configuration: ClusterConfiguration, defaults: ClusterTaskOptions = ClusterTaskOptions(),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (ClusterPool) async throws -> Result
) async throws -> Result {
    let pool = ClusterPool(configuration: configuration, defaults: defaults)
    return try await withThrowingTaskGroup(of: Void.self, returning: Result.self, isolation: isolation) {
        group in
        group.addTask { try await pool.run() }
        do {
            let result = try await body(pool)
            group.cancelAll()
            return result
        } catch {
            group.cancelAll()
            throw error
        }
    }
}
