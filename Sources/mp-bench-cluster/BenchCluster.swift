import BenchSupport
import Multiprocessing
import MultiprocessingPostgres
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// The cluster (MultiprocessingPostgres) against PgQueuer, on one PostgreSQL: a producer in this
// process, worker hosts as child processes of it (ClusterWorker in a ChildProcess, each with its
// own local pool), the Python peer in a virtual environment with pgqueuer and asyncpg. The
// database is MP_POSTGRES_URL, or Scripts/postgres.sh's throwaway cluster, started here and
// stopped when mp-bench-cluster exits (mp-bench runs this binary for its cluster entries).

let clusterCatalogue: [CatalogueEntry] = [
    ("cluster_map_throughput", "tasks/s", "higher", { try await ClusterBench.mapThroughput() }),
    (
        "cluster_map_throughput_chunk1", "tasks/s", "higher",
        { try await ClusterBench.mapThroughputOnePerItem() }
    ),
    ("cluster_apply_latency", "ms", "lower", { try await ClusterBench.applyLatency() }),
    ("cluster_recovery", "s", "lower", { try await ClusterBench.recovery() }),
]

/// The no-op the throughput and latency entries map and apply.
struct ClusterNoop: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> Int { x }
}

/// Hangs on its first run (which the bench ends with SIGKILL on its worker host) and returns at
/// once on the next: `marker` tells the runs apart, and records the first run's worker host.
struct HangsOnFirstRun: ProcessFunction {
    var marker: String
    func callAsFunction(_ x: Int) async throws -> Int32 {
        let fd = open(marker, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { return getppid() }  // The marker exists: this is the rerun.
        let line = Array("\(getppid())\n".utf8)
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        try await Task.sleep(for: .seconds(60))
        return getppid()
    }
}

/// A worker host: a ``ClusterWorker`` in a child process, stopped with SIGTERM (graceful) or
/// SIGKILL (the recovery entry's fault).
struct BenchWorkerHost: ProcessTask {
    var url: String
    var schema: String
    var concurrency: Int
    var leaseMilliseconds: Int
    var rescueMilliseconds: Int

    func run() async throws {
        var options = ClusterWorkerOptions()
        options.concurrency = WorkerCount(concurrency)
        options.lease = .milliseconds(leaseMilliseconds)
        options.rescueInterval = .milliseconds(rescueMilliseconds)
        options.shutdownGrace = .seconds(5)
        // The default claim size: it grows by itself once the no-ops prove quick.
        var configuration = try ClusterConfiguration(url: url, schema: schema)
        configuration.reconnectTimeout = .seconds(30)
        let worker = ClusterWorker(
            configuration: configuration, functions: [ClusterNoop.self, HangsOnFirstRun.self],
            options: options)
        try await worker.run()
    }
}

enum ClusterBench {
    static let inputs = 20_000

    // MARK: The entries

    /// Inputs per second: a warm producer maps the no-op over 20k inputs on two worker hosts,
    /// every result back at the producer (median of three), with `map`'s default chunks. Peer:
    /// PgQueuer, 20k jobs enqueued in batches and processed by one QueueManager (batch size 100,
    /// durable tables). The same runs measure ``mapThroughputOnePerItem()`` (alternating).
    static func mapThroughput() async throws -> Double {
        if let known = measuredMaps.withLock({ $0 }) { return known.chunked }
        let url = try database()
        let figures = try await withCluster(url: url, label: "map", workers: 2) { pool, admin, _ in
            _ = try await pool.map(ClusterNoop(), over: 0..<500, chunkSize: 1)
            var chunked: [Double] = []
            var single: [Double] = []
            for _ in 0..<3 {
                for chunkSize in [nil, 1] {
                    try await admin.purge(queue: "default")
                    let start = ContinuousClock.now
                    let results = try await pool.map(ClusterNoop(), over: 0..<inputs, chunkSize: chunkSize)
                    let figure = Double(inputs) / seconds(ContinuousClock.now - start)
                    precondition(results.count == inputs && results[inputs - 1] == inputs - 1)
                    if chunkSize == nil { chunked.append(figure) } else { single.append(figure) }
                    verbose(
                        "cluster_map_throughput run (chunkSize \(chunkSize.map(String.init) ?? "automatic")): \(figure) tasks/s"
                    )
                }
            }
            return (chunked: median(chunked), single: median(single))
        }
        measuredMaps.withLock { $0 = figures }
        let peer = PgQueuerPeer.measure("throughput", url: url)
        recordPeer("cluster_map_throughput", peer)
        recordPeer("cluster_map_throughput_chunk1", peer)
        return figures.chunked
    }

    /// ``mapThroughput()`` with one task (one row) per input, `chunkSize: 1`: the row path
    /// against PgQueuer's, which also stores one job per input.
    static func mapThroughputOnePerItem() async throws -> Double {
        _ = try await mapThroughput()
        return measuredMaps.withLock { $0 }!.single
    }

    /// Both figures of the map runs, once measured.
    private static let measuredMaps = Mutex<(chunked: Double, single: Double)?>(nil)

    /// Milliseconds of one `apply` round trip on an idle, warm cluster of two worker hosts
    /// (median of 50, each after a pause). Peer: PgQueuer, enqueue one job → its entrypoint
    /// starts.
    static func applyLatency() async throws -> Double {
        let url = try database()
        let figure = try await withCluster(url: url, label: "apply", workers: 2) { pool, _, _ in
            for i in 0..<20 { _ = try await pool.apply(ClusterNoop(), i) }
            var samples: [Double] = []
            for i in 0..<50 {
                // Idle: the workers are waiting for a notification, not finishing a claim.
                try await Task.sleep(for: .milliseconds(20))
                let start = ContinuousClock.now
                _ = try await pool.apply(ClusterNoop(), i)
                samples.append(seconds(ContinuousClock.now - start) * 1e3)
            }
            verbose(
                "cluster_apply_latency samples (ms): \(samples.sorted().map { (($0 * 100).rounded() / 100) })"
            )
            return median(samples)
        }
        recordPeer("cluster_apply_latency", PgQueuerPeer.measure("latency", url: url))
        return figure
    }

    /// Seconds from SIGKILL of the worker host running a task to that task's result at the
    /// producer, with a 2 s lease (median of three). No peer (`python` is null).
    static func recovery() async throws -> Double {
        let url = try database()
        return try await withCluster(url: url, label: "recovery", workers: 2, lease: 2000) { pool, _, hosts in
            var samples: [Double] = []
            for round in 0..<3 {
                let marker = "/tmp/mp-bench-recovery-\(getpid())-\(round)"
                unlink(marker)
                defer { unlink(marker) }
                let future = try await pool.submit(HangsOnFirstRun(marker: marker), round)
                var victim: Int32 = 0
                let deadline = ContinuousClock.now + .seconds(30)
                while victim == 0 && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(5))
                    victim = readPID(marker)
                }
                guard victim > 0, let host = hosts.take(pid: victim) else {
                    throw BenchSetupError("cluster_recovery: no worker host started the task")
                }
                host.kill()
                let start = ContinuousClock.now
                let ranOn = try await future.value
                samples.append(seconds(ContinuousClock.now - start))
                _ = try await host.join()
                precondition(ranOn != victim)
                verbose("cluster_recovery round \(round): \(samples.last!) s")
                // A new worker host replaces the killed one for the next round.
                try await hosts.start(1)
            }
            return median(samples)
        }
    }

    // MARK: Setup

    /// Runs `body` with `workers` worker hosts and a producer on a schema of its own, then
    /// stops the hosts with SIGTERM and drops the schema.
    static func withCluster<T: Sendable>(
        url: String, label: String, workers: Int, lease: Int = 30_000,
        _ body: (ClusterPool, ClusterAdmin, ClusterHosts) async throws -> T
    ) async throws -> T {
        let schema = "mp_bench_\(label)_\(getpid())"
        var configuration = try ClusterConfiguration(url: url, schema: schema)
        configuration.reconnectTimeout = .seconds(30)
        let hosts = ClusterHosts(url: url, schema: schema, lease: lease)
        defer {
            _ = runProgram([
                "psql", "-q", url, "-c",
                "SET client_min_messages TO warning; DROP SCHEMA IF EXISTS \(schema) CASCADE",
            ])
        }
        do {
            let result = try await withClusterAdmin(configuration: configuration) { admin in
                try await withClusterPool(configuration: configuration) { pool in
                    try await hosts.start(workers)
                    try await hosts.waitUntilLive(admin)
                    return try await body(pool, admin, hosts)
                }
            }
            await hosts.stop()
            return result
        } catch {
            await hosts.stop()
            throw error
        }
    }

    /// The database URL: MP_POSTGRES_URL, or Scripts/postgres.sh's cluster, started once (and
    /// stopped when mp-bench-cluster exits (mp-bench runs this binary for its cluster entries)..
    static func database() throws -> String {
        try databaseURL.withLock { url in
            if let url { return url }
            if let value = getenv("MP_POSTGRES_URL"), value.pointee != 0 {
                url = String(cString: value)
                return url!
            }
            let (status, output) = runProgram(["/bin/bash", postgresScript, "start"])
            guard status == 0, let line = output.split(separator: "\n").last, line.hasPrefix("postgres://")
            else {
                throw BenchSetupError(
                    "the cluster entries need PostgreSQL: set MP_POSTGRES_URL, or install Debian's postgresql package for Scripts/postgres.sh (it said: \(output))"
                )
            }
            url = String(line)
            atexit { _ = runProgram(["/bin/bash", ClusterBench.postgresScript, "stop"]) }
            return url!
        }
    }

    private static let databaseURL = Mutex<String?>(nil)

    static var postgresScript: String {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/Scripts/postgres.sh"
    }

    static func recordPeer(_ name: String, _ value: Double?) {
        guard let value else { return }
        peerFigures.withLock { $0[name] = (value, "pgqueuer") }
    }

    static func readPID(_ path: String) -> Int32 {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 32)
        let count = read(fd, &bytes, bytes.count)
        guard count > 0 else { return 0 }
        return Int32(String(decoding: bytes[0..<count], as: UTF8.self).split(separator: "\n").first ?? "")
            ?? 0
    }

    static func verbose(_ line: String) {
        if getenv("MP_BENCH_VERBOSE") != nil { print("  " + line) }
    }
}

/// The worker hosts of one entry.
final class ClusterHosts: Sendable {
    let url: String
    let schema: String
    let lease: Int
    let hosts = Mutex<[ChildProcess<BenchWorkerHost>]>([])

    init(url: String, schema: String, lease: Int) {
        self.url = url
        self.schema = schema
        self.lease = lease
    }

    /// Starts `count` more worker hosts, one task at a time each (two hosts on two cores).
    func start(_ count: Int) async throws {
        for _ in 0..<count {
            let host = try ChildProcess(
                BenchWorkerHost(
                    url: url, schema: schema, concurrency: 1, leaseMilliseconds: lease,
                    rescueMilliseconds: 250),
                name: "mp-bench-cluster-worker")
            try await host.start()
            hosts.withLock { $0.append(host) }
        }
    }

    /// Waits until every host is registered and live.
    func waitUntilLive(_ admin: ClusterAdmin) async throws {
        let pids = Set(hosts.withLock { $0.compactMap(\.pid) })
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let live = Set(try await admin.workers().filter(\.isLive).map(\.pid))
            if pids.isSubset(of: live) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw BenchSetupError("the cluster's worker hosts did not register within a minute")
    }

    /// Removes the host with `pid` from the set and returns it.
    func take(pid: Int32) -> ChildProcess<BenchWorkerHost>? {
        hosts.withLock { hosts in
            guard let index = hosts.firstIndex(where: { $0.pid == pid }) else { return nil }
            return hosts.remove(at: index)
        }
    }

    /// SIGTERM to every host, then waits for them (SIGKILL after ten seconds).
    func stop() async {
        let all = hosts.withLock { hosts in
            defer { hosts = [] }
            return hosts
        }
        for host in all { host.terminate() }
        for host in all where (try? await host.join(timeout: .seconds(10))) == nil {
            host.kill()
            _ = try? await host.join()
        }
    }
}

/// PgQueuer, the peer of the cluster entries: a Python script in a virtual environment with
/// `pgqueuer` and `asyncpg`, made under /tmp with pip when missing. Its tables go in a schema
/// of their own (`PGQUEUER_SCHEMA`), dropped afterwards.
enum PgQueuerPeer {
    static let venv = "/tmp/mp-bench-pgqueuer-venv"
    static let requirements = ["pgqueuer==1.6.0", "asyncpg==0.32.0"]

    /// `"throughput"` (jobs/s) or `"latency"` (ms); `nil`, said plainly, when PgQueuer cannot run.
    static func measure(_ what: String, url: String) -> Double? {
        guard !CommandLine.arguments.contains("--no-python") else { return nil }
        guard let python = interpreter() else { return nil }
        let path = "/tmp/mp-bench-pgqueuer-\(getpid()).py"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { return nil }
        _ = Array(script.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        defer { unlink(path) }
        let (status, output) = runProgram(
            [python, path, url, what], environment: ["PGQUEUER_SCHEMA": "mp_bench_pgqueuer_\(getpid())"])
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == what, let value = Double(parts[1]) { return value }
            if parts.first == "note" { ClusterBench.verbose("pgqueuer: " + line.dropFirst(5)) }
        }
        print("note: the PgQueuer peer of \(what) gave no figure (exit status \(status)); its figure is null")
        return nil
    }

    /// The virtual environment's python, made when missing; `nil` (said plainly) when it
    /// cannot be.
    static func interpreter() -> String? {
        let python = venv + "/bin/python"
        let check = [python, "-c", "import pgqueuer, asyncpg; assert pgqueuer.__version__ == '1.6.0'"]
        if access(python, X_OK) == 0, runProgram(check).0 == 0 { return python }
        if access(python, X_OK) != 0, runProgram(["python3", "-m", "venv", venv]).0 != 0 {
            print(
                "note: cannot make a virtual environment at \(venv) (python3 -m venv); PgQueuer figures are null"
            )
            return nil
        }
        let (status, _) = runProgram([venv + "/bin/pip", "install", "-q"] + requirements)
        guard status == 0, runProgram(check).0 == 0 else {
            print(
                "note: cannot install \(requirements.joined(separator: " ")) from PyPI into \(venv); PgQueuer figures are null"
            )
            return nil
        }
        return python
    }

    /// The measurements: QueueManager with batch size 100, one worker, durable tables (the
    /// default durability), started and idle before the clock starts, as the Swift workers are.
    static let script = #"""
        import asyncio, os, statistics, sys, time
        import asyncpg
        from pgqueuer import AsyncpgDriver, Queries, QueueManager

        DSN, WHAT = sys.argv[1], sys.argv[2]
        SCHEMA = os.environ["PGQUEUER_SCHEMA"]

        async def fresh():
            conn = await asyncpg.connect(DSN)
            await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            await Queries(AsyncpgDriver(conn)).install()
            await conn.close()

        async def drop():
            conn = await asyncpg.connect(DSN)
            await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            await conn.close()

        async def with_manager(entrypoint, body):
            qm = QueueManager(Queries(AsyncpgDriver(await asyncpg.connect(DSN))))
            qm.entrypoint("bench")(entrypoint)
            runner = asyncio.create_task(qm.run(batch_size=100))
            await asyncio.sleep(1.0)  # started, listening and idle
            producer = await asyncpg.connect(DSN)
            try:
                return await body(Queries(AsyncpgDriver(producer)))
            finally:
                qm.shutdown.set()
                await asyncio.wait_for(runner, 30)
                await producer.close()

        async def throughput(n=20_000, rounds=3):
            runs = []
            for _ in range(rounds):
                await fresh()
                done = asyncio.Event()
                count = 0
                async def noop(job):
                    nonlocal count
                    count += 1
                    if count == n: done.set()
                async def body(queries):
                    start = time.perf_counter()
                    for first in range(0, n, 1000):
                        k = min(1000, n - first)
                        await queries.enqueue(["bench"] * k, [None] * k, [0] * k)
                    enqueued = time.perf_counter()
                    await asyncio.wait_for(done.wait(), 300)
                    end = time.perf_counter()
                    print("note", f"enqueue {n / (enqueued - start):.0f} jobs/s, end to end {n / (end - start):.0f} jobs/s", flush=True)
                    return n / (end - start)
                runs.append(await with_manager(noop, body))
            return statistics.median(runs)

        async def latency(count=50):
            await fresh()
            started = {}
            arrived = asyncio.Event()
            async def mark(job):
                started[int(job.payload.decode())] = time.perf_counter()
                arrived.set()
            async def body(queries):
                samples = []
                for i in range(-20, count):
                    await asyncio.sleep(0.02)
                    arrived.clear()
                    start = time.perf_counter()
                    await queries.enqueue("bench", str(i).encode())
                    await asyncio.wait_for(arrived.wait(), 30)
                    if i >= 0: samples.append((started[i] - start) * 1e3)
                return statistics.median(samples)
            return await with_manager(mark, body)

        async def main():
            try:
                value = await (throughput() if WHAT == "throughput" else latency())
                print(WHAT, value, flush=True)
            finally:
                await drop()

        asyncio.run(main())
        """#
}
