import Multiprocessing
import MultiprocessingPostgres
import Testing

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif
#if canImport(Glibc)
    import Glibc
#endif

/// Runs a program with `extra` added to (and `removed` taken from) this process's environment,
/// its stdout and stderr captured together; returns its exit status (in a child process, so that
/// waiting blocks no thread of the test's).
struct ToolRun: ProcessTask {
    var arguments: [String]
    var extra: [String: String] = [:]
    var removed: [String] = []

    func run() async throws -> Int32 {
        var environment: [String] = []
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            let name = String(text.prefix { $0 != "=" })
            if !removed.contains(name) && extra[name] == nil { environment.append(text) }
            index += 1
        }
        environment += extra.map { "\($0.key)=\($0.value)" }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        defer { posix_spawn_file_actions_destroy(&actions) }
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup($0) } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, arguments[0], &actions, nil, argv, envp) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}

/// The built `mp-queue`, beside the test bundle in the build folder.
enum QueueTool {
    static var path: String { builtProgram("mp-queue") }

    /// Runs `mp-queue arguments...`; returns its exit status and its output (stdout and stderr).
    static func run(
        _ arguments: [String], extra: [String: String] = [:], removed: [String] = []
    ) async throws -> (status: Int32, output: String) {
        let child = try ChildProcess(
            ToolRun(arguments: [path] + arguments, extra: extra, removed: removed),
            capturesStandardOutput: true)
        try await child.start()
        let status = try await child.value
        _ = try await child.join()
        return (status, child.standardOutput)
    }

    /// Runs `mp-queue arguments... --json` on `configuration`'s queue and decodes its output.
    static func json<T: Decodable>(
        _ type: T.Type, _ arguments: [String], on configuration: ClusterConfiguration
    ) async throws -> T {
        let (status, output) = try await run(
            arguments + ["--url", try await TestDatabase.url(), "--schema", configuration.schema, "--json"])
        guard status == 0 else { throw TestSetupError("mp-queue \(arguments) exited \(status): \(output)") }
        do {
            return try JSONDecoder().decode(T.self, from: Data(output.utf8))
        } catch {
            throw TestSetupError("mp-queue \(arguments) printed what is not a \(T.self): \(output)")
        }
    }

    /// Runs `mp-queue arguments...` (a table) on `configuration`'s queue.
    static func text(_ arguments: [String], on configuration: ClusterConfiguration) async throws -> String {
        let (status, output) = try await run(
            arguments + ["--url", try await TestDatabase.url(), "--schema", configuration.schema])
        guard status == 0 else { throw TestSetupError("mp-queue \(arguments) exited \(status): \(output)") }
        return output
    }
}

/// What `mp-queue --json` prints, decoded independently of the tool's own types.
struct ToolQueues: Decodable {
    struct Queue: Decodable {
        var name: String
        var counts: [String: Int]
        var oldestWaitingSeconds: Double?
        var finishedLastMinute: Int
    }
    var queues: [Queue]
}

struct ToolWorkers: Decodable {
    struct Worker: Decodable {
        var id: String
        var host: String
        var pid: Int32
        var concurrency: Int
        var queues: [String]
        var taskNames: [String]
        var secondsSinceHeartbeat: Double
        var live: Bool
        var stopping: Bool
        var tasksHeld: Int
    }
    var workers: [Worker]
}

struct ToolFailed: Decodable {
    struct Task: Decodable {
        var id: Int64
        var taskName: String
        var queue: String
        var attempts: Int
        var error: String
        var ageSeconds: Double
    }
    var failed: [Task]
}

struct ToolCount: Decodable {
    var retried: Int?
    var cancelled: Int?
    var purged: Int?
    var deleted: Int?
    var rescued: Int?
}

extension ClusterTests {
    @Suite("mp-queue, the operations tool, against a live queue")
    struct QueueToolTests {
        @Test("figures: queues, workers and failed tasks, as JSON and as tables")
        func figures() async throws {
            let configuration = try await TestDatabase.configuration("toolfig")
            defer { Task { await TestDatabase.drop(configuration) } }
            try await withWorker(configuration) { (worker: ClusterWorker) async throws in
                try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                    var once = ClusterTaskOptions()
                    once.maxAttempts = 1
                    let results = try await pool.mapResults(FailOdd(), over: 0..<6, options: once)
                    #expect(results.filter { (try? $0.get()) == nil }.count == 3)
                    var later = ClusterTaskOptions(queue: "later")
                    later.runAfter = .seconds(3600)
                    _ = try await pool.submit(CSquare(), 3, options: later)
                    // A task due now that no worker serves: it waits, and is the oldest waiting.
                    _ = try await pool.submit(CSquare(), 4, options: ClusterTaskOptions(queue: "unserved"))
                    try await Task.sleep(for: .milliseconds(300))

                    let queues = try await QueueTool.json(ToolQueues.self, ["queues"], on: configuration)
                        .queues
                    #expect(queues.map(\.name) == ["default", "later", "unserved"])
                    let main = try #require(queues.first)
                    #expect(
                        main.counts == [
                            "queued": 0, "running": 0, "succeeded": 3, "failed": 3, "cancelled": 0,
                        ])
                    #expect(main.finishedLastMinute == 6)
                    #expect(main.oldestWaitingSeconds == nil)
                    // Queued but not due: not waiting.
                    #expect(queues[1].counts["queued"] == 1 && queues[1].oldestWaitingSeconds == nil)
                    let waiting = try #require(queues[2].oldestWaitingSeconds)
                    #expect(waiting >= 0.2 && waiting < 60)

                    let workers = try await QueueTool.json(ToolWorkers.self, ["workers"], on: configuration)
                        .workers
                    #expect(workers.count == 1)
                    let row = try #require(workers.first)
                    #expect(row.id == worker.id)
                    #expect(row.pid == getpid())
                    #expect(row.concurrency == 2)
                    #expect(row.live && !row.stopping)
                    #expect(row.tasksHeld == 0)
                    #expect(row.queues == ["default"])
                    #expect(row.taskNames == worker.taskNames)
                    #expect(row.secondsSinceHeartbeat >= 0 && row.secondsSinceHeartbeat < 20)

                    let failed = try await QueueTool.json(ToolFailed.self, ["failed"], on: configuration)
                        .failed
                    #expect(failed.count == 3)
                    #expect(Set(failed.map(\.attempts)) == [1])
                    #expect(failed.allSatisfy { $0.error.contains("odd") && $0.queue == "default" })
                    #expect(failed.allSatisfy { $0.taskName == clusterTaskName(of: FailOdd.self) })
                    let limited = try await QueueTool.json(
                        ToolFailed.self, ["failed", "--limit", "2"], on: configuration
                    ).failed
                    #expect(limited.count == 2)
                    #expect(
                        try await QueueTool.json(
                            ToolFailed.self, ["failed", "--queue", "later"], on: configuration
                        )
                        .failed.isEmpty)

                    let status = try await QueueTool.text(["status"], on: configuration)
                    #expect(
                        status.contains("QUEUE") && status.contains("SUCCEEDED") && status.contains("HOST"))
                    #expect(status.contains(worker.id))
                    let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("default ") })
                    #expect(
                        line.split(separator: " ").map(String.init) == [
                            "default", "0", "0", "3", "3", "0", "-", "6",
                        ])
                    let table = try await QueueTool.text(["failed"], on: configuration)
                    for task in failed { #expect(table.contains("\(task.id)")) }
                    #expect(table.contains("odd"))
                    // The default command is status.
                    let bare = try await QueueTool.text([], on: configuration)
                    #expect(bare.contains("SUCCEEDED") && bare.contains(worker.id))
                }
            }
            // Stopped: the worker removed its row.
            #expect(
                try await QueueTool.json(ToolWorkers.self, ["workers"], on: configuration).workers.isEmpty)
        }

        @Test("operations: cancel, retry, purge, cleanup, rescue change the queue as they say")
        func operations() async throws {
            let configuration = try await TestDatabase.configuration("toolops")
            defer { Task { await TestDatabase.drop(configuration) } }
            let queued = try await withWorker(configuration) {
                (_: ClusterWorker) async throws -> ClusterTaskID in
                try await withClusterPool(configuration: configuration) { (pool: ClusterPool) async throws in
                    var once = ClusterTaskOptions()
                    once.maxAttempts = 1
                    _ = try await pool.mapResults(FailOdd(), over: 0..<4, options: once)
                    var later = ClusterTaskOptions()
                    later.runAfter = .seconds(3600)
                    let delayed = try await pool.submit(CSquare(), 7, options: later)

                    // cancel: the delayed task; a second cancel and an unknown id change nothing.
                    let cancelled = try await QueueTool.json(
                        ToolCount.self, ["cancel", "\(delayed.id)"], on: configuration)
                    #expect(cancelled.cancelled == 1)
                    #expect(
                        try await TestDatabase.query(
                            "SELECT state FROM \(configuration.schema).tasks WHERE id = \(delayed.id)") == [
                                "cancelled"
                            ])
                    #expect(
                        try await QueueTool.json(
                            ToolCount.self, ["cancel", "\(delayed.id)", "999999"], on: configuration
                        )
                        .cancelled == 0)

                    // retry: the cancelled task runs now, on the worker, and its result arrives.
                    #expect(
                        try await QueueTool.json(
                            ToolCount.self, ["retry", "\(delayed.id)"], on: configuration
                        ).retried
                            == 1)
                    let again = try await pool.result(of: delayed.id, as: CSquare.self)
                    #expect(try await again.value(timeout: .seconds(60)) == 49)

                    // retry --all-failed: both failed tasks run again (and fail again, once each).
                    let before = try await TestDatabase.query(
                        "SELECT id || ':' || finished_at FROM \(configuration.schema).tasks WHERE state = 'failed' ORDER BY id"
                    )
                    #expect(before.count == 2)
                    #expect(
                        try await QueueTool.json(
                            ToolCount.self, ["retry", "--all-failed"], on: configuration
                        ).retried == 2)
                    #expect(
                        try await eventually {
                            let after = try await TestDatabase.query(
                                "SELECT id || ':' || finished_at FROM \(configuration.schema).tasks WHERE state = 'failed' ORDER BY id"
                            )
                            return after.count == 2 && Set(after).isDisjoint(with: before)
                        })

                    // purge --state failed: only the failed tasks go.
                    #expect(
                        try await QueueTool.json(
                            ToolCount.self, ["purge", "--queue", "default", "--state", "failed"],
                            on: configuration
                        ).purged == 2)
                    #expect(
                        try await TestDatabase.query(
                            "SELECT state, count(*) FROM \(configuration.schema).tasks GROUP BY state ORDER BY state"
                        )
                            == ["succeeded|3"])

                    // cleanup: nothing is older than an hour; everything finished is older than 0 s.
                    #expect(
                        try await QueueTool.json(
                            ToolCount.self, ["cleanup", "--older-than", "1h"], on: configuration
                        )
                        .deleted == 0)
                    let queued = try await pool.submit(CSquare(), 1, options: later)
                    #expect(
                        try await QueueTool.json(
                            ToolCount.self, ["cleanup", "--older-than", "0s"], on: configuration
                        )
                        .deleted == 3)
                    #expect(
                        try await TestDatabase.query("SELECT id, state FROM \(configuration.schema).tasks")
                            == ["\(queued.id)|queued"])
                    return queued.id
                }
            }
            // rescue, with no worker whose own rescuer would be first: a running task whose
            // lease is past goes back to the queue.
            #expect(
                try await TestDatabase.psql(
                    "UPDATE \(configuration.schema).tasks SET state = 'running', attempt = 1, worker_id = 'gone', lease_expires_at = now() - interval '1 s' WHERE id = \(queued)"
                ) == 0)
            #expect(try await QueueTool.json(ToolCount.self, ["rescue"], on: configuration).rescued == 1)
            #expect(
                try await TestDatabase.query(
                    "SELECT state FROM \(configuration.schema).tasks WHERE id = \(queued)") == ["queued"])
            let purgedAll = try await QueueTool.text(
                ["purge", "--queue", "default", "--state", "queued"], on: configuration)
            #expect(purgedAll.contains("purged 1 task (queued) from queue 'default'"))
        }

        @Test("bad input and an unreachable database: a clear message and a failing exit status")
        func errors() async throws {
            let url = try await TestDatabase.url()
            // No database named at all.
            let none = try await QueueTool.run(["queues"], removed: ["MP_POSTGRES_URL"])
            #expect(none.status == 64)
            #expect(none.output.contains("pass --url or set MP_POSTGRES_URL"))
            // MP_POSTGRES_URL is the default for --url.
            let configuration = try await TestDatabase.configuration("toolenv")
            defer { Task { await TestDatabase.drop(configuration) } }
            let fromEnvironment = try await QueueTool.run(
                ["queues", "--schema", configuration.schema], extra: ["MP_POSTGRES_URL": url])
            #expect(fromEnvironment.status == 0)
            #expect(fromEnvironment.output.contains("no tasks on any queue"))
            // A URL that is not PostgreSQL's.
            let scheme = try await QueueTool.run(["queues", "--url", "mysql://root@127.0.0.1/x"])
            #expect(scheme.status == 1)
            #expect(scheme.output.contains("scheme 'mysql' is not postgres or postgresql"))
            // A schema name the queue refuses.
            let schema = try await QueueTool.run(["queues", "--url", url, "--schema", "Robert'); DROP"])
            #expect(schema.status == 1)
            #expect(schema.output.contains("schema name"))
            // Nobody listens on port 1: the tool gives up after --timeout, saying why.
            let start = ContinuousClock.now
            let unreachable = try await QueueTool.run(
                ["workers", "--url", "postgres://postgres@127.0.0.1:1/postgres", "--timeout", "1s"])
            #expect(unreachable.status == 1)
            #expect(unreachable.output.contains("database at 127.0.0.1:1"))
            #expect(ContinuousClock.now - start < .seconds(30))
            // Arguments the commands refuse.
            for arguments in [
                ["purge", "--url", url, "--queue", "q", "--state", "done"], ["retry", "--url", url],
                ["retry", "--url", url, "1", "--all-failed"], ["cancel", "--url", url],
                ["cleanup", "--url", url, "--older-than", "soon"], ["failed", "--url", url, "--limit", "0"],
                ["cancel", "--url", url, "x1"], ["frobnicate"],
            ] {
                let refused = try await QueueTool.run(arguments)
                #expect(refused.status == 64, "\(arguments): \(refused.output)")
                #expect(
                    refused.output.contains("Error:") || refused.output.contains("error"), "\(refused.output)"
                )
            }
        }
    }
}
