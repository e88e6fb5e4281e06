import Multiprocessing
import MultiprocessingPostgres
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

// MARK: Task types

struct CSquare: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> Int { x * x }
}

/// Renamed on the queue (``ClusterTaskNaming``).
struct Shout: ProcessFunction, ClusterTaskNaming {
    static var clusterTaskName: String { "tests.shout.v1" }
    func callAsFunction(_ text: String) async throws -> String { text.uppercased() }
}

/// Appends `"<input> <worker host pid>"` to a file, sleeps, and returns the worker host's pid
/// (the local pool worker's parent).
struct LoggedNap: ProcessFunction {
    var log: String
    var milliseconds: Int
    func callAsFunction(_ input: Int) async throws -> Int32 {
        let line = Array("\(input) \(getppid())\n".utf8)
        let fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        if fd >= 0 {
            _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        try await Task.sleep(for: .milliseconds(milliseconds))
        return getppid()
    }
}

struct CodableFailure: Error, Codable, Equatable {
    var code: Int
    var reason: String
}

struct FailOdd: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> Int {
        if x % 2 == 1 { throw CodableFailure(code: x, reason: "odd") }
        return x
    }
}

struct AlwaysTrap: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> Int {
        if x >= 0 { fatalError("always trapping on \(x)") }
        return x
    }
}

/// A type no worker registers.
struct NobodyKnows: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> Int { x }
}

/// Every function the tests' workers register.
let testFunctions: [any ProcessFunction.Type] = [
    CSquare.self, Shout.self, LoggedNap.self, FailOdd.self, AlwaysTrap.self, ThrowsThenHangs.self,
]

// MARK: Worker hosts in child processes

/// A ``ClusterWorker`` in a child process of the test binary (its local pool's workers are
/// grandchildren): a host that can be killed or sent `SIGTERM`.
struct WorkerHost: ProcessTask {
    var url: String
    var schema: String
    var concurrency = 2
    var leaseMilliseconds = 30_000
    var rescueMilliseconds = 500
    var maximumHeld: Int?

    func run() async throws {
        var options = ClusterWorkerOptions()
        options.concurrency = WorkerCount(concurrency)
        options.lease = .milliseconds(leaseMilliseconds)
        options.rescueInterval = .milliseconds(rescueMilliseconds)
        options.maximumHeld = maximumHeld
        options.shutdownGrace = .seconds(20)
        let worker = ClusterWorker(
            configuration: try ClusterConfiguration(url: url, schema: schema), functions: testFunctions,
            options: options)
        try await worker.run()
    }
}

/// Runs a program and returns its exit code (in a child process, so that waiting for it blocks
/// no thread of the test's).
struct ShellCommand: ProcessTask {
    var arguments: [String]

    func run() async throws -> Int32 {
        var pid: pid_t = 0
        let argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        guard posix_spawn(&pid, arguments[0], nil, nil, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }
}

// MARK: The database

/// The test database: `MP_POSTGRES_URL` when set (CI sets it), else the throwaway cluster of
/// `Scripts/postgres.sh`, started here when PostgreSQL's binaries exist. Without either the
/// tests fail, saying so: they never skip.
enum TestDatabase {
    static let repositoryRoot: String = {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path
    }()

    static var script: String { repositoryRoot + "/Scripts/postgres.sh" }

    private static let resolved = Mutex<String?>(nil)

    /// The connection URL.
    static func url() async throws -> String {
        if let url = resolved.withLock({ $0 }) { return url }
        if let value = getenv("MP_POSTGRES_URL"), !String(cString: value).isEmpty {
            let url = String(cString: value)
            resolved.withLock { $0 = url }
            return url
        }
        guard access("/bin/bash", X_OK) == 0, hasServerBinaries() else {
            throw TestSetupError(
                "PostgreSQL is needed: set MP_POSTGRES_URL, or install Debian's postgresql package "
                    + "(apt-get install -y postgresql) so that Scripts/postgres.sh can start a throwaway cluster"
            )
        }
        let child = try ChildProcess(
            ShellCommand(arguments: ["/bin/bash", script, "start"]), capturesStandardOutput: true)
        try await child.start()
        let status = try await child.value
        _ = try await child.join()
        let url = child.standardOutput.split(separator: "\n").last.map(String.init) ?? ""
        guard status == 0, url.hasPrefix("postgres://") else {
            throw TestSetupError(
                "Scripts/postgres.sh start failed (status \(status)): \(child.standardOutput)")
        }
        resolved.withLock { $0 = url }
        return url
    }

    static func hasServerBinaries() -> Bool {
        guard let dir = opendir("/usr/lib/postgresql") else { return false }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.first?.isNumber == true, access("/usr/lib/postgresql/\(name)/bin/initdb", X_OK) == 0 {
                return true
            }
        }
        return false
    }

    private static let counter = Atomic<Int>(0)

    /// A configuration on a schema of its own.
    static func configuration(_ label: String) async throws -> ClusterConfiguration {
        let number = counter.add(1, ordering: .relaxed).newValue
        var configuration = try ClusterConfiguration(
            url: try await url(), schema: "test_\(label)_\(getpid())_\(number)")
        configuration.pollInterval = .milliseconds(500)
        configuration.reconnectTimeout = .seconds(60)
        // Short, so that a request postgres-nio leaves hanging after the restart test's restart
        // costs the suite seconds (the default is 30 s).
        configuration.operationTimeout = .seconds(10)
        return configuration
    }

    /// Runs `psql` with `sql` and returns its exit status.
    static func psql(_ sql: String) async throws -> Int32 {
        let child = try ChildProcess(
            ShellCommand(arguments: [
                "/usr/bin/psql", "-q", "-v", "ON_ERROR_STOP=1", try await url(), "-c", sql,
            ]),
            capturesStandardOutput: true)
        try await child.start()
        return try await child.value
    }

    /// Runs `psql` and returns its unaligned, tuples-only output.
    static func query(_ sql: String) async throws -> [String] {
        let child = try ChildProcess(
            ShellCommand(arguments: [
                "/usr/bin/psql", "-At", "-v", "ON_ERROR_STOP=1", try await url(), "-c", sql,
            ]),
            capturesStandardOutput: true)
        try await child.start()
        let status = try await child.value
        _ = try await child.join()
        guard status == 0 else { throw TestSetupError("psql failed (\(status)) on: \(sql)") }
        return child.standardOutput.split(separator: "\n").map(String.init)
    }

    /// Drops a test's schema.
    static func drop(_ configuration: ClusterConfiguration) async {
        _ = try? await psql(
            "SET client_min_messages TO warning; DROP SCHEMA IF EXISTS \(configuration.schema) CASCADE")
    }

    /// `Scripts/postgres.sh restart`: `pg_ctl restart -m fast` on the script's cluster.
    static func restart() async throws {
        let url = try await url()
        let scriptURL =
            "postgres://postgres@127.0.0.1:\(getenv("MP_POSTGRES_PORT").map { String(cString: $0) } ?? "55432")/postgres"
        guard url == scriptURL else {
            throw TestSetupError(
                "the restart test needs the cluster of Scripts/postgres.sh (\(scriptURL)), not \(url)")
        }
        let child = try ChildProcess(ShellCommand(arguments: ["/bin/bash", script, "restart"]))
        try await child.start()
        let status = try await child.value
        guard status == 0 else { throw TestSetupError("Scripts/postgres.sh restart failed (\(status))") }
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A file for ``LoggedNap`` lines, and its lines.
/// A file's whole text (empty when it cannot be read).
func fileText(_ path: String) -> String {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = read(fd, &chunk, chunk.count)
        if count <= 0 { break }
        bytes += chunk[0..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// A program of this package, built beside the test bundle in the build folder.
func builtProgram(_ name: String) -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    let exe =
        count > 0 ? String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
    return String(exe[..<(exe.lastIndex(of: "/") ?? exe.startIndex)]) + "/" + name
}

struct RunLog {
    let path: String

    init(_ label: String) {
        path = "/tmp/mp-cluster-test-\(getpid())-\(label)-\(Int.random(in: 0..<1_000_000)).log"
        unlink(path)
    }

    var lines: [(input: Int, host: Int32)] {
        fileText(path).split(separator: "\n").compactMap { line in
            let parts = line.split(separator: " ")
            guard parts.count == 2, let input = Int(parts[0]), let host = Int32(parts[1]) else { return nil }
            return (input, host)
        }
    }

    func remove() { unlink(path) }
}

/// Worker options for in-process workers: no signal handling (the test binary keeps its own),
/// short intervals.
func testWorkerOptions(concurrency: Int = 2) -> ClusterWorkerOptions {
    var options = ClusterWorkerOptions()
    options.concurrency = WorkerCount(concurrency)
    options.handlesSignals = false
    options.lease = .seconds(10)
    options.rescueInterval = .milliseconds(300)
    options.shutdownGrace = .seconds(10)
    return options
}

/// Runs an in-process worker while `body` runs, then stops it and waits for it.
func withWorker<T>(
    _ configuration: ClusterConfiguration, options: ClusterWorkerOptions = testWorkerOptions(),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (ClusterWorker) async throws -> T
) async throws -> T {
    let worker = ClusterWorker(configuration: configuration, functions: testFunctions, options: options)
    let running = Task { try await worker.run() }
    do {
        let result = try await body(worker)
        worker.shutDownGracefully()
        try await running.value
        return result
    } catch {
        worker.stop()
        _ = try? await running.value
        throw error
    }
}

/// Polls `condition` every 50 ms, up to `limit`.
func eventually(_ limit: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return false
}
