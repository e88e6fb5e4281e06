import Multiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// Tasks for the launching chaos tests (internal, at file scope, so a child can find them).

/// How a task starts its `/bin/sleep`.
enum DescendantKind: String, Codable, Sendable, CaseIterable {
    /// A plain `posix_spawn`: the sleep stays in the task's process group.
    case plain
    /// `posix_spawn` with `POSIX_SPAWN_SETSID`: the sleep leaves the group (a session of its own).
    case newSession
    /// `/bin/sh` runs `setsid -w sleep` and waits: a grandchild of the task, out of its group,
    /// whose parent is still alive.
    case underShell
}

/// Starting and finding the sleeps. Each carries a unique marker as its argument (a duration
/// GNU sleep accepts), so a test finds it by its command line whatever its parent.
enum Descendants {
    static func marker() -> String { "4000.\(UInt32.random(in: 100_000...999_999))" }

    /// Starts `/bin/sleep marker` the `kind` way and returns its pid.
    static func start(marker: String, kind: DescendantKind) throws -> Int32 {
        var pid: Int32 = 0
        let program = kind == .underShell ? "/bin/sh" : "/bin/sleep"
        let arguments =
            kind == .underShell
            ? ["sh", "-c", "setsid -w /bin/sleep \(marker) & wait"] : ["sleep", marker]
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        // Dispatch's worker threads block most signals, and a spawned program inherits the mask
        // of the thread that spawned it: start it with none blocked, as any careful spawner does.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK)
        if kind == .newSession { flags |= 0x80 }  // POSIX_SPAWN_SETSID (glibc 2.26)
        posix_spawnattr_setflags(&attributes, Int16(flags))
        guard posix_spawn(&pid, program, nil, &attributes, argv, nil) == 0 else {
            throw FixtureError.badInput("spawn \(program)", line: 0)
        }
        guard kind == .underShell else { return pid }
        for _ in 0..<1000 {
            if let sleeper = find(marker: marker).first { return sleeper }
            usleep(10_000)
        }
        throw FixtureError.badInput("the shell never started its sleep", line: 0)
    }

    /// The processes running `sleep marker`.
    static func find(marker: String) -> [Int32] {
        allPIDs().filter { commandLine($0).last == marker && !ProcessProbe.isGone($0) }
    }

    static func allPIDs() -> [Int32] {
        guard let dir = opendir("/proc") else { return [] }
        defer { closedir(dir) }
        var pids: [Int32] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if let pid = Int32(name) { pids.append(pid) }
        }
        return pids
    }

    static func commandLine(_ pid: Int32) -> [String] {
        let fd = open("/proc/\(pid)/cmdline", O_RDONLY)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0 else { return [] }
        return buffer[0..<n].split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The parent of `pid`, or nil when it is gone.
    static func parent(of pid: Int32) -> Int32? {
        let fd = open("/proc/\(pid)/stat", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let n = read(fd, &buffer, buffer.count)
        guard n > 0 else { return nil }
        let text = String(decoding: buffer[0..<n], as: UTF8.self)
        guard let paren = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(paren, offsetBy: 2)...].split(separator: " ")
        return fields.count > 1 ? Int32(fields[1]) : nil
    }

    /// Every live process below `root` (not `root` itself).
    static func tree(of root: Int32) -> [Int32] {
        let parents = Dictionary(
            allPIDs().compactMap { pid in parent(of: pid).map { (pid, $0) } }, uniquingKeysWith: { a, _ in a }
        )
        var found: [Int32] = []
        var frontier = [root]
        while let next = frontier.popLast() {
            for (pid, parent) in parents where parent == next && !found.contains(pid) {
                found.append(pid)
                frontier.append(pid)
            }
        }
        return found.filter { !ProcessProbe.isGone($0) }
    }
}

/// The child in the middle of a tree: starts a sleep, reports its pid, and waits with blocking
/// calls only (a `.fork` child cannot count on the runtime's other threads).
struct DescendantStarter: ProcessTask {
    var marker: String
    var kind: DescendantKind
    var report: ChannelSender<Int32>
    /// Ignore every real-time signal, the parent-death one among them: only the hang-up of the
    /// control channel can tell this child that its parent died.
    var deaf = false
    func run() async throws {
        if deaf { for signal in 34...64 { _ = Glibc.signal(Int32(signal), SIG_IGN) } }
        let pid = try Descendants.start(marker: marker, kind: kind)
        try report.sendBlocking(pid)
        while true { sleep(10) }
    }
}

/// The same from a pool worker: returns the worker's pid and the sleep's.
struct PooledDescendantStarter: ProcessFunction {
    var marker: String
    func callAsFunction(_ kind: DescendantKind) async throws -> [Int32] {
        [getpid(), try Descendants.start(marker: marker, kind: kind)]
    }
}

/// The top-level parent of a tree: starts a child the `method` way (`"spawn"`, `"forkserver"`,
/// `"fork"`, or a `"pool"` worker) that starts a sleep; reports `[child pid, sleep pid]` and
/// waits to be killed.
struct TreeRoot: ProcessTask {
    var method: String
    var marker: String
    var kind: DescendantKind
    var report: ChannelSender<[Int32]>
    var deaf = false
    func run() async throws {
        if method == "pool" {
            let pool = ProcessPool(workers: 1)
            let pids = try await pool.apply(PooledDescendantStarter(marker: marker), kind)
            try await report.send(pids)
            try await Task.sleep(for: .seconds(120))
            withExtendedLifetime(pool) {}
            return
        }
        let startMethod: StartMethod =
            switch method {
            case "forkserver": .forkserver
            case "fork": .fork
            default: .spawn
            }
        let (receiver, sender) = try ProcessChannel<Int32>.oneWay()
        let child = try ChildProcess(
            DescendantStarter(marker: marker, kind: kind, report: sender, deaf: deaf),
            startMethod: startMethod)
        try await child.start()
        let sleeper = try await receiver.receive(timeout: .seconds(30))
        try await report.send([child.pid!, sleeper])
        try await Task.sleep(for: .seconds(120))
    }
}

/// Threads that keep the Swift runtime's metadata and conformance caches busy: each round makes
/// a type never made before (round n nests an `Int` in arrays and dictionaries as n's bits say)
/// and asks whether it conforms to two protocols, which takes the caches' locks to record the
/// answers. A process forked at such a moment inherits a lock held by a thread it does not have.
final class RuntimeLockHammer: Sendable {
    private let stopFlag = Atomic<Bool>(false)
    private let running = Atomic<Int>(0)
    private let next = Atomic<Int>(2)

    /// Types made so far.
    var rounds: Int { next.load(ordering: .relaxed) - 2 }

    init(threads: Int) {
        for _ in 0..<threads {
            running.add(1, ordering: .relaxed)
            let context = Unmanaged.passRetained(self).toOpaque()
            var thread = pthread_t()
            let started = pthread_create(
                &thread, nil,
                { raw in
                    let hammer = Unmanaged<RuntimeLockHammer>.fromOpaque(raw!).takeRetainedValue()
                    hammer.hammer()
                    return nil
                }, context)
            if started == 0 {
                pthread_detach(thread)
            } else {
                Unmanaged<RuntimeLockHammer>.fromOpaque(context).release()
                running.subtract(1, ordering: .relaxed)
            }
        }
    }

    /// Stops the threads and waits for them to end.
    func stop() {
        stopFlag.store(true, ordering: .relaxed)
        while running.load(ordering: .relaxed) > 0 { usleep(1000) }
    }

    private func hammer() {
        while !stopFlag.load(ordering: .relaxed) {
            _ = Self.nest(0, next.add(1, ordering: .relaxed).oldValue)
        }
        running.subtract(1, ordering: .relaxed)
    }

    /// Wraps `value` as the bits of `n` below its highest say (0: an array, 1: a dictionary),
    /// then checks the result's conformances.
    private static func nest<T>(_ value: T, _ n: Int) -> Bool {
        if n <= 1 {
            return (value as? any Hashable) != nil && (value as? any CustomDebugStringConvertible) != nil
        }
        return n & 1 == 0 ? nest([value], n >> 1) : nest([0: value], n >> 1)
    }
}
