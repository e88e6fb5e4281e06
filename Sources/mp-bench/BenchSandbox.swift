import BenchSupport
import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

// Confinement: the start of a child in the strictest sandbox against bubblewrap, and what a
// sandbox costs a CPU-bound pool.

/// Start + join of an empty task in `sandbox` (`Sandbox.strict` by default; `nil`: none),
/// median of `count`, milliseconds.
func sandboxStart(_ method: StartMethod, count: Int, sandbox: Sandbox? = .strict) async throws -> Double {
    let warm = try ChildProcess(EmptyTask(), startMethod: method, sandbox: sandbox)
    try await warm.start()
    try await warm.join()
    var samples: [Double] = []
    for _ in 0..<count {
        let start = ContinuousClock.now
        let child = try ChildProcess(EmptyTask(), startMethod: method, sandbox: sandbox)
        try await child.start()
        try await child.join()
        samples.append(seconds(ContinuousClock.now - start) * 1e3)
    }
    return median(samples)
}

/// `sandbox_start`: the forkserver start (a sandbox is set up after the fork, so this is the
/// sandbox's own cost on top of `process_start_fast`); bubblewrap measured in the same run.
func sandboxStartFigure() async throws -> Double {
    let figure = try await sandboxStart(.forkserver, count: 100)
    if let bubblewrap = bubblewrapStart(count: 100) {
        peerFigures.withLock { $0["sandbox_start"] = (bubblewrap, "bubblewrap") }
    }
    return figure
}

/// `bwrap --unshare-all --die-with-parent ... /bin/true`, spawned and waited for, median of
/// `count`, milliseconds; `nil` when bubblewrap is missing and cannot be installed. The command
/// binds what `/bin/true` needs to run (`/usr` and the merged-`/usr` links, `/proc`, `/dev`):
/// bare `bwrap --unshare-all --die-with-parent /bin/true` fails at its exec, having nothing
/// mounted (its figure, about 35% lower, is in BENCHMARKS.md).
func bubblewrapStart(count: Int) -> Double? {
    let bwrap = "/usr/bin/bwrap"
    if access(bwrap, X_OK) != 0 {
        // A fresh VM has no package lists yet: fetched only when the install needs them.
        if runQuietly(["/usr/bin/apt-get", "install", "-y", "-q", "bubblewrap"]) != 0 {
            _ = runQuietly(["/usr/bin/apt-get", "update", "-q"])
            _ = runQuietly(["/usr/bin/apt-get", "install", "-y", "-q", "bubblewrap"])
        }
        guard access(bwrap, X_OK) == 0 else { return nil }
    }
    let arguments = [
        bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin",
        "/bin",
        "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev",
        "/dev",
        "/bin/true",
    ]
    guard runQuietly(arguments) == 0 else { return nil }
    var samples: [Double] = []
    for _ in 0..<count {
        let start = ContinuousClock.now
        guard runQuietly(arguments) == 0 else { return nil }
        samples.append(seconds(ContinuousClock.now - start) * 1e3)
    }
    return median(samples)
}

/// Spawns `arguments` with stdout and stderr to /dev/null and waits: its exit code, or -1.
func runQuietly(_ arguments: [String]) -> Int32 {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv = arguments.map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    // Swift's worker threads block most signals, and a spawned program would inherit the mask.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
    var pid: pid_t = 0
    guard posix_spawn(&pid, arguments[0], &actions, &attributes, argv, environ) == 0 else { return -1 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return status & 0x7f == 0 ? (status >> 8) & 0xff : -1
}

/// The seed's CPU-bound work (mp-demo, part 5): the primes in one block of `blockSize` numbers.
struct SandboxPrimesInBlock: ProcessFunction {
    var blockSize: Int
    func callAsFunction(_ block: Int) async throws -> Int {
        var count = 0
        for n in (block * blockSize)..<((block + 1) * blockSize) where Self.isPrime(n) { count += 1 }
        return count
    }

    static func isPrime(_ n: Int) -> Bool {
        if n < 2 { return false }
        if n < 4 { return true }
        if n % 2 == 0 { return false }
        var d = 3
        while d * d <= n {
            if n % d == 0 { return false }
            d += 2
        }
        return true
    }
}

/// `sandbox_pool_overhead`: the seed's prime count (below 6,000,000 in blocks of 50,000, chunk
/// size 1) on a warmed two-worker pool in `Sandbox.strict` against an unconfined one,
/// alternating rounds; the ratio of the medians, as a percentage over 100.
func sandboxPoolOverhead() async throws -> Double {
    func timed(_ sandbox: Sandbox?) async throws -> Double {
        var options = PoolOptions()
        options.sandbox = sandbox
        return try await withProcessPool(workers: 2, options: options) { pool in
            _ = try await pool.map(Identity(), over: 0..<2, chunkSize: 1)
            let start = ContinuousClock.now
            let counts = try await pool.map(
                SandboxPrimesInBlock(blockSize: 50_000), over: 0..<120, chunkSize: 1)
            precondition(counts.reduce(0, +) == 412_849, "the prime count is wrong")
            return seconds(ContinuousClock.now - start)
        }
    }
    var plain: [Double] = []
    var confined: [Double] = []
    for _ in 0..<5 {
        plain.append(try await timed(nil))
        confined.append(try await timed(.strict))
        if getenv("MP_BENCH_VERBOSE") != nil {
            print("  unconfined \(plain.last!) s, sandboxed \(confined.last!) s")
        }
    }
    return (median(confined) / median(plain) - 1) * 100
}

let sandboxCatalogue: [CatalogueEntry] = [
    ("sandbox_start", "ms", "lower", { try await sandboxStartFigure() }),
    // The same start under spawn, for the spawn-to-spawn comparison (no peer figure).
    ("sandbox_start_spawn", "ms", "lower", { try await sandboxStart(.spawn, count: 30) }),
    ("sandbox_pool_overhead", "%", "lower", { try await sandboxPoolOverhead() }),
]

/// `mp-bench --sandbox-breakdown`: what each part of `Sandbox.strict` adds to a forkserver
/// start, by taking one part away at a time (medians of `count` starts, milliseconds).
func sandboxBreakdown(count: Int) async throws -> [(String, Double)] {
    var variants: [(String, Sandbox?)] = [("unconfined", nil), ("strict", .strict)]
    func without(_ name: String, _ change: (inout Sandbox) -> Void) {
        var sandbox = Sandbox.strict
        change(&sandbox)
        variants.append(("strict without \(name)", sandbox))
    }
    without("network namespace") { $0.network = .host }
    without("file-system view") {
        $0.isolatesFileSystem = false
        $0.temporaryDirectorySize = nil
    }
    without("PID namespace") { $0.isolatesProcesses = false }
    without("IPC and UTS namespaces") {
        $0.isolatesIPC = false
        $0.hostname = nil
    }
    without("limits") { $0.limits = .none }
    without("memory limit (cgroup)") { $0.limits.memory = nil }
    without("system-call filter") { $0.systemCalls = nil }
    without("Landlock") { $0.usesLandlock = false }
    variants.append(("limits only", .limitsOnly(Sandbox.strict.limits)))
    var figures: [(String, Double)] = []
    for (name, sandbox) in variants {
        figures.append((name, try await sandboxStart(.forkserver, count: count, sandbox: sandbox)))
    }
    return figures
}
