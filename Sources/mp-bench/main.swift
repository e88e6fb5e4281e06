import BenchSupport
import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

// mp-bench: swift-multiprocessing against CPython's multiprocessing, measured in one run.
// `mp-bench` prints a table; `mp-bench --json` prints {"results": [...]}; `--only a,b` limits
// the entries; `--no-python` skips CPython; `--sandbox-breakdown` prints what each part of
// `Sandbox.strict` adds to a start (BENCHMARKS.md).

struct Entry {
    var name: String
    var unit: String
    var better: String  // "lower" or "higher"
    var swift: Double
    var python: Double?
    /// What `python` holds when it is not CPython (`"bubblewrap"`, `"pgqueuer"`).
    var peer: String? = nil
}

func processStart(_ method: StartMethod, count: Int) async throws -> Double {
    let warm = try ChildProcess(EmptyTask(), startMethod: method)
    try await warm.start()
    try await warm.join()
    var samples: [Double] = []
    for _ in 0..<count {
        let start = ContinuousClock.now
        let child = try ChildProcess(EmptyTask(), startMethod: method)
        try await child.start()
        try await child.join()
        samples.append(seconds(ContinuousClock.now - start) * 1e3)
    }
    return median(samples)
}

func roundTrip(count: Int, async useAsync: Bool) async throws -> Double {
    let (mine, theirs) = try ProcessChannel<Int>.pair()
    let child = try ChildProcess(
        useAsync ? AnyEcho.async(AsyncEchoInts(channel: theirs)) : .blocking(EchoInts(channel: theirs)))
    try await child.start()
    for i in 0..<200 {
        try mine.sendBlocking(i)
        _ = try mine.receiveBlocking()
    }
    var rounds: [Double] = []
    for _ in 0..<5 {
        let start = ContinuousClock.now
        if useAsync {
            for i in 0..<count {
                try await mine.send(i)
                _ = try await mine.receive()
            }
        } else {
            for i in 0..<count {
                try mine.sendBlocking(i)
                _ = try mine.receiveBlocking()
            }
        }
        rounds.append(seconds(ContinuousClock.now - start) / Double(count) * 1e6)
    }
    try mine.sendBlocking(-1)
    try await child.value
    return median(rounds)
}

/// Either echo flavour, so both run through one code path.
enum AnyEcho: ProcessTask {
    case blocking(EchoInts)
    case async(AsyncEchoInts)
    func run() async throws {
        switch self {
        case .blocking(let task): try await task.run()
        case .async(let task): try await task.run()
        }
    }
}

func throughput(count: Int) async throws -> Double {
    var runs: [Double] = []
    for _ in 0..<3 {
        let (receiver, sender) = try ProcessChannel<Int>.oneWay()
        let child = try ChildProcess(MebibyteSender(sender: sender, count: count))
        try await child.start()
        _ = try receiver.receiveBytesBlocking()
        let start = ContinuousClock.now
        for _ in 0..<count { _ = try receiver.receiveBytesBlocking() }
        let elapsed = seconds(ContinuousClock.now - start)
        try await child.value
        runs.append(Double(count) * Double(1 << 20) / elapsed / 1e6)
    }
    return median(runs)
}

func poolMap(chunkSize: Int?) async throws -> Double {
    try await withProcessPool(workers: 2) { pool in
        _ = try await pool.map(Identity(), over: 0..<1000)
        var runs: [Double] = []
        for _ in 0..<3 {
            let start = ContinuousClock.now
            let out = try await pool.map(Identity(), over: 0..<100_000, chunkSize: chunkSize)
            runs.append(100_000 / seconds(ContinuousClock.now - start))
            precondition(out.count == 100_000)
        }
        return median(runs)
    }
}

func poolApply(count: Int) async throws -> Double {
    try await withProcessPool(workers: 2) { pool in
        for i in 0..<200 { _ = try await pool.apply(Identity(), i) }
        var rounds: [Double] = []
        for _ in 0..<5 {
            let start = ContinuousClock.now
            for i in 0..<count { _ = try await pool.apply(Identity(), i) }
            rounds.append(seconds(ContinuousClock.now - start) / Double(count) * 1e6)
        }
        return median(rounds)
    }
}

func poolSpeedup() async throws -> Double {
    func timed(_ workers: Int) async throws -> Double {
        try await withProcessPool(workers: WorkerCount(workers)) { pool in
            _ = try await pool.map(Identity(), over: 0..<workers, chunkSize: 1)
            let start = ContinuousClock.now
            _ = try await pool.map(Churn(), over: 0..<40, chunkSize: 1)
            return seconds(ContinuousClock.now - start)
        }
    }
    // Alternating rounds, then the ratio of the medians: a burst of load from elsewhere on a
    // shared machine spoils one round, not the figure.
    var ones: [Double] = []
    var twos: [Double] = []
    for _ in 0..<5 {
        ones.append(try await timed(1))
        twos.append(try await timed(2))
        if getenv("MP_BENCH_VERBOSE") != nil {
            print("  1 worker \(ones.last!) s, 2 workers \(twos.last!) s")
        }
    }
    return median(ones) / median(twos)
}

func poolCrashDetect() async throws -> Double {
    try await poolLossDetect(SelfKill())
}

/// Milliseconds from `apply` of a function that ends its worker to `PoolError.workerLost`, median
/// of 15, on one worker warmed before each loss so that a replacement's start-up is never counted.
func poolLossDetect<Crash: ProcessFunction>(_ crash: Crash) async throws -> Double
where Crash.Input == Int, Crash.Output == Int {
    try await withProcessPool(workers: 1) { pool in
        var samples: [Double] = []
        for _ in 0..<15 {
            _ = try await pool.apply(Identity(), 0)
            let start = ContinuousClock.now
            do {
                _ = try await pool.apply(crash, 0)
            } catch PoolError.workerLost {
                samples.append(seconds(ContinuousClock.now - start) * 1e3)
            }
        }
        return median(samples)
    }
}

/// A spawned child that traps (force-unwrap of nil): start, crash, report with the crashing
/// function. Compare with `process_start_spawn` (start and join of an empty child).
func childCrashReport(count: Int) async throws -> Double {
    var samples: [Double] = []
    for _ in 0..<count {
        let start = ContinuousClock.now
        let child = try ChildProcess(NilUnwrap(text: "not a number"))
        try await child.start()
        do {
            _ = try await child.value
        } catch ProcessError.crashed(let crash) {
            samples.append(seconds(ContinuousClock.now - start) * 1e3)
            if crash.crashingFunction == nil {
                print("warning: a crash report without a crashing function:\n\(crash)")
            }
        }
    }
    return median(samples)
}

func poolTrapDetect() async throws -> Double {
    // As pool_crash_detect, but the worker traps (its crash handler runs) instead of being killed.
    try await poolLossDetect(NilUnwrapOnCall())
}

let arguments = CommandLine.arguments.dropFirst()
let json = arguments.contains("--json")
let withPython = !arguments.contains("--no-python")

if arguments.contains("--sandbox-breakdown") {
    for (variant, milliseconds) in try await sandboxBreakdown(count: 100) {
        print("\(variant): \((milliseconds * 100).rounded() / 100) ms")
    }
    exit(0)
}

let coreCatalogue: [CatalogueEntry] = [
    ("process_start_spawn", "ms", "lower", { try await processStart(.spawn, count: 30) }),
    ("process_start_fast", "ms", "lower", { try await processStart(.forkserver, count: 200) }),
    ("channel_roundtrip", "us", "lower", { try await roundTrip(count: 5000, async: false) }),
    ("channel_roundtrip_async", "us", "lower", { try await roundTrip(count: 5000, async: true) }),
    ("channel_throughput_1mib", "MB/s", "higher", { try await throughput(count: 500) }),
    ("pool_map_chunk1", "tasks/s", "higher", { try await poolMap(chunkSize: 1) }),
    ("pool_map_auto", "tasks/s", "higher", { try await poolMap(chunkSize: nil) }),
    ("pool_apply_roundtrip", "us", "lower", { try await poolApply(count: 5000) }),
    ("pool_cpu_speedup", "x", "higher", { try await poolSpeedup() }),
    ("pool_crash_detect", "ms", "lower", { try await poolCrashDetect() }),
    ("pool_trap_detect", "ms", "lower", { try await poolTrapDetect() }),
    ("child_crash_report", "ms", "lower", { try await childCrashReport(count: 15) }),
]
let catalogue =
    coreCatalogue + poolFiguresCatalogue + sharedCatalogue + queueCatalogue + managerCatalogue
    + clusterCatalogue + sandboxCatalogue
// CPython has one Connection API; the async Swift entry is compared with the same figure.
let pythonName = ["channel_roundtrip_async": "channel_roundtrip"]

var entries: [Entry] = []
for (name, unit, better, measure) in catalogue where requestedEntries?.contains(name) ?? true {
    entries.append(Entry(name: name, unit: unit, better: better, swift: try await measure(), python: nil))
    if let peer = peerFigures.withLock({ $0[name] }) {
        entries[entries.count - 1].python = peer.value
        entries[entries.count - 1].peer = peer.peer
    }
}
if withPython {
    let python = PythonBaseline.measure(
        entries.filter { $0.peer == nil }.map { pythonName[$0.name] ?? $0.name })
    for i in entries.indices where entries[i].peer == nil {
        entries[i].python = python[pythonName[entries[i].name] ?? entries[i].name]
    }
}

func format(_ value: Double) -> String {
    let rounded = (value * 1000).rounded() / 1000
    return "\(rounded)"
}

if json {
    let items = entries.map { e in
        "{\"name\": \"\(e.name)\", \"unit\": \"\(e.unit)\", \"better\": \"\(e.better)\", \"swift\": \(format(e.swift)), \"python\": \(e.python.map(format) ?? "null")\(e.peer.map { ", \"peer\": \"\($0)\"" } ?? "")}"
    }
    print("{\"results\": [\n  " + items.joined(separator: ",\n  ") + "\n]}")
} else {
    func pad(_ s: String, _ n: Int) -> String {
        s.count >= n ? s + " " : s + String(repeating: " ", count: n - s.count)
    }
    print(pad("benchmark", 26) + pad("unit", 8) + pad("swift", 14) + pad("python", 14) + "swift advantage")
    for e in entries {
        var ratio = "-"
        if let p = e.python, p > 0, e.swift > 0 {
            let r = e.better == "lower" ? p / e.swift : e.swift / p
            ratio = "\(format(r))x"
        }
        print(
            pad(e.name, 26) + pad(e.unit, 8) + pad(format(e.swift), 14)
                + pad(e.python.map { format($0) + (e.peer.map { " (\($0))" } ?? "") } ?? "n/a", 14) + ratio)
    }
}
