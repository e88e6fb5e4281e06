import Synchronization

/// Long-lived worker processes that run ``ProcessFunction`` calls: CPython's `Pool` and
/// `ProcessPoolExecutor`, minus their hangs.
///
/// ```swift
/// try await withProcessPool(workers: .cpuCount) { pool in
///     let y = try await pool.apply(Square(), 5)                  // apply
///     let future = try pool.submit(Square(), 10)                 // apply_async
///     let ys = try await pool.map(Square(), over: 0..<1_000)     // map, chunked automatically
///     for try await y in pool.unorderedMap(Square(), over: inputs) { ... }   // imap_unordered
/// }
/// ```
///
/// A worker that dies — a trap, a segfault, `SIGKILL` from the OOM killer — fails only the task
/// it was running, with ``PoolError/workerLost(_:)`` naming the task, the pid, the signal and
/// the worker's last stderr lines; the worker is replaced and every other task carries on.
/// An error thrown by the function comes back as itself when its type is `Codable`, otherwise as
/// a ``RemoteError``. Cancelling the Swift task that awaits a result cancels that work.
public final class ProcessPool: Sendable {
    /// How many workers the pool runs.
    public let workerCount: Int
    /// The options it was created with.
    public var options: PoolOptions { core.options }

    let core: PoolCore
    let registry = WorkerRegistry()
    private let drivers: Mutex<[Task<Void, Never>]>
    private let typeNames = Mutex<[ObjectIdentifier: String]>([:])

    /// Starts `workers` worker processes.
    public init(workers: WorkerCount = .cpuCount, options: PoolOptions = PoolOptions()) {
        workerCount = workers.value
        let core = PoolCore(workers: workers.value, options: options)
        self.core = core
        let registry = self.registry
        drivers = Mutex(
            (1...workers.value).map { number in
                Task.detached { await WorkerDriver(core: core, number: number, registry: registry).run() }
            })
    }

    deinit { core.close() }

    /// The pids of the workers now running (they change as workers are replaced).
    public var workerPIDs: [Int32] { registry.pids.sorted() }

    // MARK: One task

    /// Runs `function(input)` in a worker and returns its result: CPython's `apply`.
    public func apply<F: ProcessFunction>(_ function: F, _ input: F.Input) async throws -> F.Output {
        try await submit(function, input).value
    }

    /// Submits `function(input)` and returns at once with a handle to its result: CPython's
    /// `apply_async` and `ProcessPoolExecutor.submit`.
    ///
    /// - Throws: ``PoolError/closed`` after ``close()``; ``ProcessError`` when `F` cannot be
    ///   sent to a worker.
    public func submit<F: ProcessFunction>(_ function: F, _ input: F.Input) throws -> PoolFuture<F.Output> {
        let future = PoolFuture<F.Output>()
        let job = try makeJob(function, inputs: [input], label: .input({ Self.describe(input) })) { results in
            future.complete(
                results.flatMap {
                    $0.count > 0 ? $0.result(at: 0) : .failure(PoolError.protocolError("empty result"))
                })
        }
        future.setCanceller { [registry, core] in
            if let pid = job.cancel() {
                registry.worker(pid)?.stop(.cancelled, grace: core.options.terminationGrace)
            }
        }
        try core.enqueue([job])
        return future
    }

    // MARK: Many tasks

    /// `function` over every input, results in input order: CPython's `map`.
    ///
    /// Inputs go to workers in chunks: `chunkSize`, or CPython's rule (about four chunks per
    /// worker) when `nil`. The first failing item's error is thrown (the rest is cancelled);
    /// use ``mapResults(_:over:chunkSize:progress:)`` to keep going past failures.
    @inlinable
    public func map<F: ProcessFunction, Inputs: Sequence>(
        _ function: F, over inputs: Inputs, chunkSize: Int? = nil,
        progress: (@Sendable (PoolProgress) -> Void)? = nil
    ) async throws -> [F.Output] where Inputs.Element == F.Input {
        // Gathering the inputs here, in the caller's module, is compiled for their concrete type.
        try await map(function, items: Array(inputs), chunkSize: chunkSize, progress: progress)
    }

    @usableFromInline
    func map<F: ProcessFunction>(
        _ function: F, items: [F.Input], chunkSize: Int?, progress: (@Sendable (PoolProgress) -> Void)?
    ) async throws -> [F.Output] {
        let batch = try submitChunks(
            function, items, chunkSize: chunkSize, failFast: true, progress: progress)
        await awaitSettled(batch)
        do {
            return try batch.values()
        } catch {
            batch.cancelAll(registry, grace: core.options.terminationGrace)
            throw error
        }
    }

    /// Like ``map(_:over:chunkSize:progress:)-(_,Inputs,_,_)`` but every item gets its own result, so one
    /// failure (a thrown error, a crashed worker) never stops the batch.
    @inlinable
    public func mapResults<F: ProcessFunction, Inputs: Sequence>(
        _ function: F, over inputs: Inputs, chunkSize: Int? = nil,
        progress: (@Sendable (PoolProgress) -> Void)? = nil
    ) async throws -> [Result<F.Output, any Error>] where Inputs.Element == F.Input {
        try await mapResults(function, items: Array(inputs), chunkSize: chunkSize, progress: progress)
    }

    @usableFromInline
    func mapResults<F: ProcessFunction>(
        _ function: F, items: [F.Input], chunkSize: Int?, progress: (@Sendable (PoolProgress) -> Void)?
    ) async throws -> [Result<F.Output, any Error>] {
        let batch = try submitChunks(
            function, items, chunkSize: chunkSize, failFast: false, progress: progress)
        await awaitSettled(batch)
        return batch.results()
    }

    /// Waits for a map's chunks; cancelling the waiting task cancels the map's work.
    private func awaitSettled<F>(_ batch: MapBatch<F>) async {
        let registry = self.registry
        let grace = core.options.terminationGrace
        await withTaskCancellationHandler {
            await batch.settled.wait()
        } onCancel: {
            batch.cancelAll(registry, grace: grace)
        }
        if Task.isCancelled { batch.cancelAll(registry, grace: grace) }
    }

    /// Results in input order as they become available, consuming `inputs` lazily with at most
    /// a few chunks per worker in flight, so an endless input runs in bounded memory:
    /// CPython's `imap`.
    public func orderedMap<F: ProcessFunction, Inputs: Sequence>(
        _ function: F, over inputs: Inputs, chunkSize: Int = 1
    ) -> PoolMapSequence<F, Inputs> where Inputs.Element == F.Input {
        PoolMapSequence(pool: self, function: function, inputs: inputs, chunkSize: chunkSize, ordered: true)
    }

    /// Results in completion order, consuming `inputs` lazily: CPython's `imap_unordered`.
    public func unorderedMap<F: ProcessFunction, Inputs: Sequence>(
        _ function: F, over inputs: Inputs, chunkSize: Int = 1
    ) -> PoolMapSequence<F, Inputs> where Inputs.Element == F.Input {
        PoolMapSequence(pool: self, function: function, inputs: inputs, chunkSize: chunkSize, ordered: false)
    }

    // MARK: Life

    /// Takes no new work; what was submitted still runs. CPython's `close()`.
    public func close() { core.close() }

    /// Waits for every submitted task to finish and the workers to exit (after ``close()``).
    public func join() async {
        let tasks = drivers.withLock { $0 }
        for task in tasks { await task.value }
    }

    /// Waits until every submitted task has finished, without closing the pool.
    public func waitUntilIdle() async { await core.drain() }

    /// Stops at once: queued work is cancelled, running work is killed with its workers.
    /// CPython's `terminate()`.
    public func terminate() async {
        core.terminate()
        for worker in registry.all { worker.stop(.cancelled, grace: .zero) }
        await join()
    }

    // MARK: Internals

    static func describe<T>(_ input: T) -> String {
        let text = String(describing: input)
        return text.count <= 60 ? text : String(text.prefix(57)) + "..."
    }

    /// CPython's rule: `ceil(n / (4 * workers))`.
    /// CPython's rule, capped so that a chunk of large items stays near ``chunkBytes``: the
    /// first item's encoded size stands for the others. A 1 MiB item travels alone, and the
    /// next chunk is already on its way while a worker handles it.
    func automaticChunkSize<Input: Encodable>(_ items: [Input]) -> Int {
        let size = automaticChunkSize(items.count)
        guard size > 1, let first = items.first else { return size }
        var probe: [UInt8] = []
        guard (try? BinaryEncoder().encode(first, appendingTo: &probe)) != nil, probe.count > 64 else {
            return size
        }
        return max(1, min(size, Self.chunkBytes / probe.count))
    }

    /// The encoded size an automatic chunk aims to stay under.
    static let chunkBytes = 256 << 10

    func automaticChunkSize(_ count: Int) -> Int {
        let (size, extra) = count.quotientAndRemainder(dividingBy: max(1, workerCount * 4))
        return max(1, size + (extra > 0 ? 1 : 0))
    }

    private func installed<F: ProcessFunction>(_ function: F) throws -> InstalledFunction {
        let key = ObjectIdentifier(F.self)
        let name: String
        if let cached = typeNames.withLock({ $0[key] }) {
            name = cached
        } else {
            name = try TypeIdentity.name(of: F.self).get()
            typeNames.withLock { $0[key] = name }
        }
        let payload: [UInt8]
        let attachments = DescriptorTransfer.Outgoing()
        do {
            payload = try TaskCoding.encode(function, attachments: attachments)
        } catch {
            throw ProcessError.codec(error)
        }
        return core.install(
            typeName: name, payload: payload, descriptors: attachments.descriptors, owner: function)
    }

    /// A job for `inputs`, whose input is encoded now; `deliver` gets one result per input.
    func makeJob<F: ProcessFunction>(
        _ function: F, inputs: [F.Input], label: JobLabel,
        deliver: @escaping @Sendable (Result<ChunkValues<F.Output>, any Error>) -> Void
    ) throws -> PoolJob {
        let installed = try self.installed(function)
        let input: [UInt8]
        do {
            input = try BinaryEncoder().encode(inputs)
        } catch {
            throw ProcessError.codec(error)
        }
        let batch = SingleJobBatch<F.Output>(
            core: core, function: installed, input: input, count: inputs.count, label: label,
            completion: deliver)
        return batch.makeJob()
    }

    /// Submits `items` in chunks: one batch, one job per chunk.
    func submitChunks<F: ProcessFunction>(
        _ function: F, _ items: [F.Input], chunkSize: Int?, failFast: Bool,
        progress: (@Sendable (PoolProgress) -> Void)?
    ) throws -> MapBatch<F> {
        let size = max(1, chunkSize ?? automaticChunkSize(items))
        let batch = MapBatch<F>(
            core: core, function: try installed(function), items: items, chunkSize: size, failFast: failFast,
            progress: progress)
        do {
            try core.enqueue(batch.makeJobs())
        } catch {
            batch.dropJobs()
            throw error
        }
        return batch
    }
}

/// The results of one chunk of a map.
final class ChunkFuture<Output: Sendable>: Sendable {
    let itemCount: Int
    let future = PoolFuture<ChunkValues<Output>>()

    init(itemCount: Int) { self.itemCount = itemCount }

    func complete(_ result: Result<ChunkValues<Output>, any Error>) { future.complete(result) }
    func setCanceller(_ cancel: @escaping @Sendable () -> Void) { future.setCanceller(cancel) }
    func cancel() { future.cancel() }
    var value: ChunkValues<Output> { get async throws { try await future.value } }
}

/// How far a map has come.
public struct PoolProgress: Sendable, Hashable {
    /// Items finished (successfully or not).
    public var completed: Int
    /// Items in the map.
    public var total: Int

    /// A progress report: `completed` of `total` items finished.
    public init(completed: Int, total: Int) {
        self.completed = completed
        self.total = total
    }

    /// The finished fraction, 0...1.
    public var fraction: Double { total == 0 ? 1 : Double(completed) / Double(total) }
}

/// Runs `body` with a pool of `workers` processes, then waits for outstanding work and stops the
/// workers. If `body` throws, the pool is terminated (queued work cancelled, workers killed).
public func withProcessPool<Result>(
    workers: WorkerCount = .cpuCount, options: PoolOptions = PoolOptions(),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (ProcessPool) async throws -> Result
) async throws -> Result {
    let pool = ProcessPool(workers: workers, options: options)
    do {
        let result = try await body(pool)
        pool.close()
        await pool.join()
        return result
    } catch {
        await pool.terminate()
        throw error
    }
}
