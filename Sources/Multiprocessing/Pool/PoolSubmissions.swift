/// A ``ProcessTask`` that travels as the input of a function installed once per task type:
/// what `submit(task)` sends when the task holds no descriptors.
struct TaskRunner<Work: ProcessTask>: ProcessFunction where Work.Output: Codable {
    func callAsFunction(_ task: Work) async throws -> Work.Output { try await task.run() }
}

/// The same for a task that returns nothing.
struct VoidTaskRunner<Work: ProcessTask>: ProcessFunction where Work.Output == Void {
    func callAsFunction(_ task: Work) async throws -> NoValue {
        try await task.run()
        return NoValue()
    }
}

/// A ``ProcessTask`` installed as a function of its own: what `submit(task)` sends when the
/// task holds descriptors (a queue, a lock, shared memory), which travel only with an install.
struct BoundTask<Work: ProcessTask>: ProcessFunction where Work.Output: Codable {
    var task: Work
    func callAsFunction(_ input: NoValue) async throws -> Work.Output { try await task.run() }
}

/// The same for a task that returns nothing.
struct BoundVoidTask<Work: ProcessTask>: ProcessFunction where Work.Output == Void {
    var task: Work
    func callAsFunction(_ input: NoValue) async throws -> NoValue {
        try await task.run()
        return NoValue()
    }
}

/// The input of a bound task, and the output of one that returns nothing.
struct NoValue: Codable, Sendable {}

extension ProcessPool {
    // MARK: Tasks

    /// Submits a zero-argument ``ProcessTask`` to run in a worker and returns at once with a
    /// handle to its result: CPython's `apply_async(f, (q,))` / `executor.submit(f, q)`, the
    /// task's stored properties being the arguments.
    ///
    /// The task runs like a function call: a worker that dies running it fails it with
    /// ``PoolError/workerLost(_:)`` (and it is retried under ``PoolOptions/retries``), it is
    /// stopped after ``PoolOptions/taskTimeout``, and cancelling the future (or the task awaiting
    /// it) cancels it. Handles the task holds (queues, locks, shared memory) travel with it.
    ///
    /// - Throws: ``PoolError/closed`` after ``close()``; ``ProcessError`` when the task cannot be
    ///   sent to a worker.
    public func submit<Work: ProcessTask>(_ task: Work) throws -> PoolFuture<Work.Output>
    where Work.Output: Codable {
        if Self.travelsAsInput(task) {
            return try submit(TaskRunner<Work>(), task, label: Self.label(task)) { $0 }
        }
        return try submit(BoundTask(task: task), NoValue(), label: Self.label(task)) { $0 }
    }

    /// Submits a ``ProcessTask`` that returns nothing: see ``submit(_:)-(Work)``.
    public func submit<Work: ProcessTask>(_ task: Work) throws -> PoolFuture<Void>
    where Work.Output == Void {
        if Self.travelsAsInput(task) {
            return try submit(VoidTaskRunner<Work>(), task, label: Self.label(task)) { _ in () }
        }
        return try submit(BoundVoidTask(task: task), NoValue(), label: Self.label(task)) { _ in () }
    }

    /// Runs a ``ProcessTask`` in a worker and returns its result: CPython's `apply(f, (q,))`.
    public func apply<Work: ProcessTask>(_ task: Work) async throws -> Work.Output
    where Work.Output: Codable {
        try await submit(task).value
    }

    /// Runs a ``ProcessTask`` that returns nothing in a worker: CPython's `apply(f, (q,))`.
    public func apply<Work: ProcessTask>(_ task: Work) async throws where Work.Output == Void {
        try await submit(task).value
    }

    // MARK: A map awaited later

    /// Submits `function` over every input and returns at once with a future of all the results
    /// in input order: CPython's `map_async(f, inputs)`, whose `get(timeout)` is
    /// ``PoolFuture/value(timeout:)``.
    ///
    /// ```swift
    /// let squares = try pool.submitMap(Square(), over: 0..<1_000)
    /// let ys = try await squares.value(timeout: .seconds(5))   // PoolError.resultTimedOut if late
    /// ```
    ///
    /// The rules of ``map(_:over:chunkSize:progress:)-(_,Inputs,_,_)`` apply: the first failing item's error is
    /// the future's error, and the rest of the map is cancelled. When
    /// ``PoolFuture/value(timeout:)`` times out, the map goes on (as CPython's does): await the
    /// future again for its results, or ``PoolFuture/cancel()`` it to stop the work (queued
    /// chunks never run, running ones' workers are stopped and replaced).
    ///
    /// - Throws: ``PoolError/closed`` after ``close()``; ``ProcessError`` when `F` cannot be
    ///   sent to a worker.
    @inlinable
    public func submitMap<F: ProcessFunction, Inputs: Sequence>(
        _ function: F, over inputs: Inputs, chunkSize: Int? = nil,
        progress: (@Sendable (PoolProgress) -> Void)? = nil
    ) throws -> PoolFuture<[F.Output]> where Inputs.Element == F.Input {
        try submitMap(function, items: Array(inputs), chunkSize: chunkSize, progress: progress)
    }

    @usableFromInline
    func submitMap<F: ProcessFunction>(
        _ function: F, items: [F.Input], chunkSize: Int?, progress: (@Sendable (PoolProgress) -> Void)?
    ) throws -> PoolFuture<[F.Output]> {
        let batch = try submitChunks(
            function, items, chunkSize: chunkSize, failFast: true, progress: progress)
        let registry = self.registry
        let grace = core.options.terminationGrace
        let future = PoolFuture<[F.Output]>()
        future.setCanceller { batch.cancelAll(registry, grace: grace) }
        // Settles the future when the map does; waiting on the batch's event holds no thread.
        Task {
            await batch.settled.wait()
            do {
                future.complete(.success(try batch.values()))
            } catch {
                batch.cancelAll(registry, grace: grace)
                future.complete(.failure(error))
            }
        }
        return future
    }

    // MARK: Internals

    /// A future for `function(input)` whose result is `transform`ed: ``submit(_:_:)`` for any
    /// output type.
    func submit<F: ProcessFunction, Output: Sendable>(
        _ function: F, _ input: F.Input, label: JobLabel,
        transform: @escaping @Sendable (F.Output) -> Output
    ) throws -> PoolFuture<Output> {
        let future = PoolFuture<Output>()
        let job = try makeJob(function, inputs: [input], label: label) { results in
            future.complete(
                results.flatMap {
                    $0.count > 0 ? $0.result(at: 0) : .failure(PoolError.protocolError("empty result"))
                }.map(transform))
        }
        future.setCanceller { [registry, core] in
            if let pid = job.cancel() {
                registry.worker(pid)?.stop(.cancelled, grace: core.options.terminationGrace)
            }
        }
        try core.enqueue([job])
        return future
    }

    /// Whether `task` can travel as a job's input: it holds no descriptors, which only an
    /// install can carry.
    static func travelsAsInput<Work: ProcessTask>(_ task: Work) -> Bool {
        (try? BinaryEncoder().encode(task)) != nil
    }

    static func label<Work: ProcessTask>(_ task: Work) -> JobLabel {
        .input({ describe(task) })
    }
}
