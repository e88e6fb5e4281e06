import Multiprocessing
import PostgresNIO
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Serves a cluster's queue from this host: claims tasks of the types it registered, runs each
/// in its own local `ProcessPool`, and records the results.
///
/// ```swift
/// // In the worker's main, a binary that contains the task types:
/// let worker = ClusterWorker(
///     configuration: try ClusterConfiguration(url: url),
///     functions: [Square.self, Render.self])
/// try await worker.run()        // until SIGTERM/SIGINT; or put it in a ServiceGroup
/// ```
///
/// Every attempt runs in a process of the local pool, so a trap, a time-out or a memory limit
/// costs that attempt, never the worker. Claims hold a lease renewed by heartbeats; an attempt's
/// result is recorded only while its lease is still this worker's (fenced by worker id and
/// attempt), so an answer that comes after the task was handed to another worker is refused.
/// A task cancelled by its producer stops running here.
///
/// Shutdown: the first `SIGTERM`/`SIGINT` (or a `ServiceGroup`'s graceful shutdown, or
/// ``shutDownGracefully()``) stops claiming, hands back claimed tasks that have not started,
/// and gives running ones ``ClusterWorkerOptions/shutdownGrace`` to finish; the second (or
/// cancelling the task running ``run()``, or ``stop()``) stops them at once and hands them back
/// without charging an attempt.
public final class ClusterWorker: Service, Sendable {
    /// This worker's id in the `workers` table and in its leases.
    public let id: String
    /// The queue.
    public let configuration: ClusterConfiguration
    /// How it serves the queue.
    public let options: ClusterWorkerOptions
    let functions: [String: RegisteredFunction]
    let core: WorkerCore

    /// A worker for `functions` (the task types it may run), known on the queue by their
    /// names (``clusterTaskName(of:)``).
    public init(
        configuration: ClusterConfiguration, functions: [any ProcessFunction.Type],
        options: ClusterWorkerOptions = ClusterWorkerOptions()
    ) {
        self.configuration = configuration
        self.options = options
        var registered: [String: RegisteredFunction] = [:]
        for type in functions {
            for function in Self.register(type) { registered[function.name] = function }
        }
        self.functions = registered
        var random = SystemRandomNumberGenerator()
        let host = options.hostName ?? Self.hostName()
        id = "\(host)-\(getpid())-\(String(random.next() & 0xffff_ffff, radix: 16))"
        core = WorkerCore(options: options)
    }

    private static func register<F: ProcessFunction>(_ type: F.Type) -> [RegisteredFunction] {
        [RegisteredFunction(type), RegisteredFunction(chunksOf: type)]
    }

    /// The task names this worker runs: each function's ``clusterTaskName(of:)``, and the same
    /// followed by `[]` for chunks of a map's inputs.
    public var taskNames: [String] { functions.keys.sorted() }

    /// What the worker has done so far.
    public var statistics: ClusterWorkerStatistics { core.statistics }

    /// Starts a graceful shutdown, as the first `SIGTERM` does.
    public func shutDownGracefully() { core.beginDraining() }

    /// Stops at once, as the second `SIGTERM` does: running tasks are stopped and handed back.
    public func stop() { core.stopNow() }

    /// Serves the queue until shut down (see the type's description). Throws when the database
    /// cannot be reached at start within the configured reconnect time-out.
    public func run() async throws {
        let db = ClusterDatabase(configuration: configuration, label: "worker")
        let clientTask = db.startClient()
        let signalTask: Task<Void, Never>? =
            options.handlesSignals
            ? Task { [core] in
                var count = 0
                for await _ in await UnixSignalsSequence(trapping: .sigterm, .sigint) {
                    count += 1
                    if count == 1 { core.beginDraining() } else { core.stopNow() }
                }
            } : nil
        // Serving runs in a task of its own, so that cancelling `run()` stops the work in order
        // (hand back, record what finished) instead of cutting the database off mid-way.
        let serving = Task { try await serve(db) }
        let result = await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await serving.result
            } onGracefulShutdown: { [core] in
                core.beginDraining()
            }
        } onCancel: { [core] in
            core.stopNow()
        }
        signalTask?.cancel()
        clientTask.cancel()
        await clientTask.value
        try result.get()
    }

    private func serve(_ db: ClusterDatabase) async throws {
        try await db.migrate()
        let queries = WorkerQueries(db: db, workerID: id)
        let registration = WorkerRegistration(
            host: options.hostName ?? Self.hostName(), pid: getpid(),
            concurrency: Int32(options.concurrency.value),
            queues: options.queues, names: taskNames, lease: options.lease, stopping: false)
        try await db.retrying("registering the worker") { try await queries.register(registration) }
        var poolOptions = options.pool
        poolOptions.retries = 0
        let pool = ProcessPool(workers: options.concurrency, options: poolOptions)
        db.events?.info(
            "worker started",
            metadata: [
                "worker": "\(id)", "host": "\(registration.host)", "process.pid": "\(registration.pid)",
                "concurrency": "\(registration.concurrency)",
                "queues": "\(options.queues.joined(separator: ","))",
                "task.names": "\(taskNames.joined(separator: ","))",
            ])
        let loops = WorkerLoops(
            worker: self, db: db, queries: queries, maintenance: MaintenanceQueries(db: db), pool: pool,
            registration: registration)
        await withDiscardingTaskGroup { group in
            group.addTask { await loops.listen() }
            group.addTask { await loops.claim() }
            group.addTask { await loops.flush() }
            group.addTask { await loops.heartbeat() }
            group.addTask { await loops.rescue() }
            // The owner starts each claimed task as a slot frees up.
            while let batch = await core.nextToStart() {
                for task in batch {
                    group.addTask { await loops.execute(task) }
                }
            }
            group.cancelAll()
        }
        // Whatever is still held did not finish: give it back. Then record what did.
        let leftover = core.takeUnfinished()
        try? await db.retrying("handing back tasks") { try await queries.handBack(leftover) }
        core.count(handedBack: leftover.count)
        await loops.flushOnce()
        try? await db.retrying("deregistering") { try await queries.deregister() }
        await pool.terminate()
        let done = statistics
        db.events?.info(
            "worker stopped",
            metadata: [
                "worker": "\(id)", "claimed": "\(done.claimed)", "recorded": "\(done.recorded)",
                "refused": "\(done.refused)", "handed.back": "\(done.handedBack)",
            ])
    }

    static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Counts of what a worker did, since it started.
public struct ClusterWorkerStatistics: Sendable, Hashable {
    /// Tasks claimed (attempts started here).
    public var claimed = 0
    /// Outcomes recorded (success or failure).
    public var recorded = 0
    /// Outcomes refused because the lease was no longer this worker's (the task was cancelled,
    /// or rescued and handed to another worker), or because an earlier try of the same write,
    /// whose answer was lost with its connection, had already recorded them.
    public var refused = 0
    /// Tasks stopped here because they were cancelled or taken away while running.
    public var stoppedRunning = 0
    /// Tasks handed back to the queue on shutdown.
    public var handedBack = 0
}
