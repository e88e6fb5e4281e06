import Multiprocessing
import MultiprocessingPostgres
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Workers killed, leases lost, the server restarted, shutdowns, and the admin API.
extension ClusterTests {
    @Suite("faults and operations")
    struct ClusterFaultTests {
        @Test("a worker host SIGKILLed mid-task: the task runs again elsewhere, one result")
        func workerKilled() async throws {
            let configuration = try await TestDatabase.configuration("killed")
            defer { Task { await TestDatabase.drop(configuration) } }
            let log = RunLog("killed")
            defer { log.remove() }
            let host = try ChildProcess(
                WorkerHost(
                    url: try await TestDatabase.url(), schema: configuration.schema, leaseMilliseconds: 1500))
            try await host.start()
            defer { host.kill() }
            try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                let future = try await pool.submit(LoggedNap(log: log.path, milliseconds: 1500), 7)
                #expect(try await eventually { log.lines.count == 1 })
                #expect(log.lines.first?.host == host.pid)
                host.kill()
                _ = try await host.join()
                try await withWorker(configuration) { (_: ClusterWorker) async throws in
                    let ranOn = try await future.value
                    #expect(ranOn == getpid())  // The in-process worker is the local pool's parent.
                }
                #expect(log.lines.map(\.input) == [7, 7])
                #expect(
                    try await TestDatabase.query(
                        "SELECT state, attempt FROM \(configuration.schema).tasks WHERE id = \(future.id)")
                        == ["succeeded|2"])
            }
        }

        @Test("a lease that expired while its task still ran: the late completion is refused")
        func lateCompletionRefused() async throws {
            let configuration = try await TestDatabase.configuration("late")
            defer { Task { await TestDatabase.drop(configuration) } }
            let log = RunLog("late")
            defer { log.remove() }
            // The first worker never renews its lease (heartbeats an hour apart, lease 1 s).
            var stale = testWorkerOptions(concurrency: 1)
            stale.lease = .seconds(1)
            stale.heartbeatInterval = .seconds(3600)
            stale.rescueInterval = .seconds(3600)
            stale.maximumHeld = 1
            try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                let future = try await pool.submit(LoggedNap(log: log.path, milliseconds: 2500), 1)
                try await withWorker(configuration, options: stale) { (first: ClusterWorker) async throws in
                    #expect(try await eventually { log.lines.count == 1 })
                    // The second worker's rescuer returns the expired lease; it runs attempt 2.
                    try await withWorker(configuration) { (second: ClusterWorker) async throws in
                        #expect(try await eventually { log.lines.count == 2 })
                        #expect(try await eventually { first.statistics.refused == 1 })
                        _ = try await future.value
                        // Counted once the worker's write returns, which may be after the producer saw it.
                        #expect(try await eventually { second.statistics.recorded == 1 })
                    }
                    #expect(first.statistics.recorded == 0)
                }
                #expect(
                    try await TestDatabase.query(
                        "SELECT state, attempt FROM \(configuration.schema).tasks WHERE id = \(future.id)")
                        == ["succeeded|2"])
            }
        }

        @Test("a completion deferred for company is still fenced: taken away meanwhile, it is refused")
        func deferredCompletionFenced() async throws {
            let configuration = try await TestDatabase.configuration("deferred")
            defer { Task { await TestDatabase.drop(configuration) } }
            let log = RunLog("deferred")
            defer { log.remove() }
            // One slot; the quick task's outcome waits (up to a minute) while the slow one runs.
            var options = testWorkerOptions(concurrency: 1)
            options.maximumHeld = 8
            options.completionDelay = .seconds(60)
            try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                let quick = try await pool.submit(LoggedNap(log: log.path, milliseconds: 0), 1)
                let slow = try await pool.submit(LoggedNap(log: log.path, milliseconds: 1500), 2)
                try await withWorker(configuration, options: options) {
                    (worker: ClusterWorker) async throws in
                    #expect(try await eventually { log.lines.count == 2 })
                    #expect(worker.statistics.recorded == 0)  // The quick one's outcome waits.
                    // Meanwhile its lease passes to another worker (as the rescuer would hand it on).
                    _ = try await TestDatabase.query(
                        """
                        UPDATE \(configuration.schema).tasks SET worker_id = 'elsewhere', attempt = attempt + 1
                        WHERE id = \(quick.id)
                        """)
                    // Idle after the slow one: both outcomes are written, the quick one's refused.
                    _ = try await slow.value
                    #expect(try await eventually { worker.statistics.refused == 1 })
                    #expect(worker.statistics.recorded == 1)
                }
                #expect(
                    try await TestDatabase.query(
                        """
                        SELECT state, worker_id, attempt FROM \(configuration.schema).tasks WHERE id = \(quick.id)
                        """) == ["running|elsewhere|2"])
                #expect(try await pool.cancel([quick.id]) == 1)
            }
        }

        @Test(
            "PostgreSQL restarted (pg_ctl restart -m fast) in the middle of a map: it completes, nothing lost or doubled"
        )
        func serverRestart() async throws {
            let configuration = try await TestDatabase.configuration("restart")
            defer { Task { await TestDatabase.drop(configuration) } }
            let log = RunLog("restart")
            defer { log.remove() }
            let count = 400
            try await withWorker(configuration) { (worker: ClusterWorker) async throws in
                try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                    let done = Atomic<Int>(0)
                    let restarted = Task {
                        while done.load(ordering: .relaxed) < count / 4 {
                            try await Task.sleep(for: .milliseconds(20))
                        }
                        try await TestDatabase.restart()
                        return done.load(ordering: .relaxed)
                    }
                    let results = try await pool.map(
                        LoggedNap(log: log.path, milliseconds: 5), over: 0..<count, chunkSize: 1
                    ) {
                        done.store($0.completed, ordering: .relaxed)
                    }
                    let atRestart = try await restarted.value
                    #expect(atRestart < count)
                    #expect(results.count == count)
                    #expect(Set(log.lines.map(\.input)) == Set(0..<count))
                }
                // A completion whose answer was lost with the restart is written again, and that
                // second try is refused by the fence: it counts as refused, not recorded.
                #expect(
                    try await eventually {
                        worker.statistics.recorded + worker.statistics.refused >= count
                    })
            }
            #expect(
                try await TestDatabase.query(
                    "SELECT count(*), count(DISTINCT batch_index), bool_and(state = 'succeeded') FROM \(configuration.schema).tasks"
                ) == ["\(count)|\(count)|t"])
        }

        @Test("graceful shutdown on SIGTERM: the running task finishes, claimed ones go back uncharged")
        func gracefulShutdown() async throws {
            let configuration = try await TestDatabase.configuration("graceful")
            defer { Task { await TestDatabase.drop(configuration) } }
            let log = RunLog("graceful")
            defer { log.remove() }
            let host = try ChildProcess(
                WorkerHost(
                    url: try await TestDatabase.url(), schema: configuration.schema, concurrency: 1,
                    maximumHeld: 6))
            try await host.start()
            defer { host.kill() }
            try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                var futures: [ClusterFuture<Int32>] = []
                for x in 0..<6 {
                    futures.append(try await pool.submit(LoggedNap(log: log.path, milliseconds: 1000), x))
                }
                #expect(try await eventually { log.lines.count == 1 })
                host.terminate()
                #expect(try await host.join() == .exited(0))
                #expect(log.lines.count == 1)
                #expect(try await futures[0].value == host.pid)
                let rows = try await TestDatabase.query(
                    "SELECT state, attempt FROM \(configuration.schema).tasks ORDER BY id")
                #expect(rows == ["succeeded|1"] + Array(repeating: "queued|0", count: 5))
                #expect(
                    try await TestDatabase.query("SELECT count(*) FROM \(configuration.schema).workers") == [
                        "0"
                    ])
                try await withWorker(configuration) { (_: ClusterWorker) async throws in
                    for future in futures.dropFirst() { #expect(try await future.value == getpid()) }
                }
            }
        }

        @Test("a second SIGTERM stops at once: the running task goes back to the queue uncharged")
        func secondSignal() async throws {
            let configuration = try await TestDatabase.configuration("second")
            defer { Task { await TestDatabase.drop(configuration) } }
            let log = RunLog("second")
            defer { log.remove() }
            let host = try ChildProcess(
                WorkerHost(url: try await TestDatabase.url(), schema: configuration.schema, concurrency: 1))
            try await host.start()
            defer { host.kill() }
            try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                let future = try await pool.submit(LoggedNap(log: log.path, milliseconds: 600_000), 1)
                #expect(try await eventually { log.lines.count == 1 })
                host.terminate()
                try await Task.sleep(for: .milliseconds(300))
                #expect(host.isAlive)  // Draining: the running task has its grace.
                host.terminate()
                #expect(try await host.join() == .exited(0))
                #expect(
                    try await TestDatabase.query(
                        "SELECT state, attempt, worker_id IS NULL FROM \(configuration.schema).tasks WHERE id = \(future.id)"
                    ) == ["queued|0|t"])
                #expect(try await pool.cancel([future.id]) == 1)
            }
        }

        @Test("in a ServiceGroup: its graceful shutdown drains the worker, the running task finishes")
        func serviceGroup() async throws {
            let configuration = try await TestDatabase.configuration("group")
            defer { Task { await TestDatabase.drop(configuration) } }
            let log = RunLog("group")
            defer { log.remove() }
            let worker = ClusterWorker(
                configuration: configuration, functions: testFunctions, options: testWorkerOptions())
            let group = ServiceGroup(services: [worker], logger: Logger(label: "test"))
            let running = Task { try await group.run() }
            try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                #expect(try await pool.apply(CSquare(), 3) == 9)
                let future = try await pool.submit(LoggedNap(log: log.path, milliseconds: 500), 1)
                #expect(try await eventually { log.lines.count == 1 })
                await group.triggerGracefulShutdown()
                #expect(try await future.value == getpid())
            }
            try await running.value
            #expect(worker.statistics.recorded == 2)
            #expect(worker.statistics.handedBack == 0)
        }

        @Test(
            "the figures API and operations: counts, oldest waiting, workers, failed tasks, retry, cancel, purge, retention"
        )
        func admin() async throws {
            let configuration = try await TestDatabase.configuration("admin")
            defer { Task { await TestDatabase.drop(configuration) } }
            try await withClusterAdmin(configuration: configuration) { (admin: ClusterAdmin) async throws in
                try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                    var once = ClusterTaskOptions(queue: "ops")
                    once.maxAttempts = 1
                    let failing = try await pool.submit(FailOdd(), 1, options: once)
                    var waiting = ClusterTaskOptions(queue: "ops")
                    waiting.runAfter = .seconds(3600)
                    let parked = try await pool.submit(CSquare(), 2, options: waiting)
                    let queued = try await pool.submit(
                        CSquare(), 3, options: ClusterTaskOptions(queue: "idle"))

                    var options = testWorkerOptions()
                    options.queues = ["ops"]
                    try await withWorker(configuration, options: options) {
                        (worker: ClusterWorker) async throws in
                        await #expect(throws: CodableFailure.self) { try await failing.value }
                        #expect(try await pool.apply(CSquare(), 4, options: once) == 16)
                        let workers = try await admin.workers()
                        #expect(workers.count == 1)
                        #expect(workers.first?.id == worker.id)
                        #expect(workers.first?.pid == getpid())
                        #expect(workers.first?.isLive == true)
                        #expect(workers.first?.queues == ["ops"])
                        #expect(workers.first?.taskNames.contains(clusterTaskName(of: CSquare.self)) == true)
                    }
                    let queues = try await admin.queues()
                    #expect(queues.map(\.name) == ["idle", "ops"])
                    let ops = queues.first { $0.name == "ops" }
                    #expect(
                        ops?.counts == [.queued: 1, .running: 0, .succeeded: 1, .failed: 1, .cancelled: 0])
                    #expect(ops?.oldestWaiting == nil)  // The queued one is not due.
                    #expect(ops?.finishedLastMinute == 2)
                    let idle = queues.first { $0.name == "idle" }
                    #expect(idle?.counts[.queued] == 1)
                    #expect(idle?.oldestWaiting != nil)

                    let failed = try await admin.failedTasks(queue: "ops")
                    #expect(failed.map(\.id) == [failing.id])
                    #expect(failed.first?.error.contains("odd") == true)
                    #expect(try await admin.state(of: failing.id) == .failed)
                    #expect(try await admin.retry([failing.id]) == 1)
                    #expect(try await admin.state(of: failing.id) == .queued)
                    #expect(try await admin.cancel([parked.id, failing.id]) == 2)
                    await #expect(throws: PoolError.cancelled) { try await parked.value }
                    #expect(try await admin.state(of: parked.id) == .cancelled)
                    #expect(try await admin.purge(queue: "ops", states: [.cancelled]) == 2)
                    #expect(try await admin.deleteFinished(olderThan: .seconds(3600)) == 0)
                    #expect(try await admin.deleteFinished(olderThan: .zero) == 1)
                    #expect(try await admin.state(of: queued.id) == .queued)
                    #expect(try await admin.state(of: ClusterTaskID(-1)) == nil)
                }
            }
        }

        @Test("migrations: concurrent runners on a fresh schema apply each version once")
        func concurrentMigrations() async throws {
            let configuration = try await TestDatabase.configuration("migrate")
            defer { Task { await TestDatabase.drop(configuration) } }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        try await withClusterAdmin(configuration: configuration) {
                            (admin: ClusterAdmin) async throws in
                            _ = try await admin.queues()
                        }
                    }
                }
                try await group.waitForAll()
            }
            #expect(
                try await TestDatabase.query(
                    "SELECT version FROM \(configuration.schema).schema_version ORDER BY version")
                    == ["1", "2", "3", "4"])

            // Version 4: a statement that sets multiprocessing.quiet (a claim, a lease renewal)
            // sends no notification; any other update that finishes a task still does.
            let s = configuration.schema
            let ids = try await TestDatabase.query(
                """
                INSERT INTO \(s).tasks (queue, task_name, function, input, batch_id, batch_index, state)
                SELECT 'q', 'n', '\\x00', '\\x00', 1, g, 'running' FROM generate_series(1, 2) g RETURNING id
                """
            ).filter { Int($0) != nil }  // Not the command tag.
            #expect(ids.count == 2)
            let output = try await TestDatabase.query(
                """
                LISTEN multiprocessing_\(s);
                BEGIN;
                WITH quiet AS MATERIALIZED (SELECT set_config('multiprocessing.quiet', 'on', true) AS quiet)
                UPDATE \(s).tasks SET state = 'succeeded' FROM quiet WHERE id = \(ids[0]);
                COMMIT;
                UPDATE \(s).tasks SET state = 'succeeded' WHERE id = \(ids[1]);
                """)
            let notifications = output.filter { $0.contains("Asynchronous notification") }
            #expect(notifications.count == 1, "\(output)")
            #expect(notifications.first?.contains("\"f\(ids[1])\"") == true, "\(output)")
        }

        @Test("configuration: URLs and schema names")
        func configuration() throws {
            let plain = try ClusterConfiguration(
                url: "postgres://app:s%40cret@db.example:6543/jobs?sslmode=disable")
            #expect(plain.connection.host == "db.example")
            #expect(plain.connection.port == 6543)
            #expect(plain.connection.username == "app")
            #expect(plain.connection.password == "s@cret")
            #expect(plain.connection.database == "jobs")
            #expect(plain.schema == "multiprocessing")
            let loopback = try ClusterConfiguration(
                url: "postgresql://postgres@127.0.0.1/postgres", schema: "q_1")
            #expect(loopback.connection.port == 5432)
            #expect(loopback.connection.password == nil)
            #expect(throws: ClusterError.self) { try ClusterConfiguration(url: "mysql://x@y/z") }
            #expect(throws: ClusterError.self) { try ClusterConfiguration(url: "postgres://x@y:port/z") }
            #expect(throws: ClusterError.self) {
                try ClusterConfiguration(url: "postgres://x@y/z", schema: "Bad; DROP")
            }
            #expect(throws: ClusterError.self) {
                try ClusterConfiguration(url: "postgres://x@y/z", schema: "1abc")
            }
        }
    }
}
