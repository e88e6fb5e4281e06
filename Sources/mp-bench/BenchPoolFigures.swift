import BenchSupport
import Multiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// Pool figures beyond speed of small items: 1 MiB items through a map, the memory an idle worker
// holds, and the tail latency of `apply` while other tasks keep the same pool busy.

/// Copies its 1 MiB input and changes one byte: a trivial transformation, so a map of it
/// measures moving the bytes there and back.
struct TouchBytes: ProcessFunction {
    func callAsFunction(_ bytes: [UInt8]) async throws -> [UInt8] {
        var output = bytes
        output[0] &+= 1
        return output
    }
}

/// Sleeps 10 ms and names its worker, so that a short map reaches every worker of the pool.
struct WorkerPID: ProcessFunction {
    func callAsFunction(_ x: Int) async throws -> Int32 {
        usleep(10_000)
        return getpid()
    }
}

/// MB/s of a 2-worker map of ``TouchBytes`` over `count` distinct 1 MiB arrays, counting the
/// input and the output bytes (2 MiB per item), automatic chunking; median of three maps.
func poolMapMebibytes(count: Int) async throws -> Double {
    let size = 1 << 20
    let inputs = (0..<count).map { [UInt8](repeating: UInt8(truncatingIfNeeded: $0), count: size) }
    return try await withProcessPool(workers: 2) { pool in
        _ = try await pool.map(TouchBytes(), over: inputs.prefix(4))
        var rates: [Double] = []
        for _ in 0..<3 {
            let start = ContinuousClock.now
            let outputs = try await pool.map(TouchBytes(), over: inputs)
            rates.append(Double(2 * count * size) / seconds(ContinuousClock.now - start) / 1e6)
            precondition(
                outputs.count == count
                    && outputs.indices.allSatisfy {
                        outputs[$0].count == size && outputs[$0][0] == UInt8(truncatingIfNeeded: $0 + 1)
                    },
                "wrong outputs")
        }
        return median(rates)
    }
}

/// A kB field of a `/proc/<pid>/` file in MiB: `VmRSS:` of `status` (the entry's figure) or
/// `Pss:` of `smaps_rollup` (shown with `MP_BENCH_VERBOSE`: pages shared with other processes
/// counted in part).
func procMiB(_ pid: Int32, _ file: String = "status", _ field: String = "VmRSS:") -> Double? {
    let fd = open("/proc/\(pid)/\(file)", O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix(field) {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if fields.count >= 2, let kib = Double(fields[1]) { return kib / 1024 }
    }
    return nil
}

/// Resident memory of an idle worker of a 2-worker pool, MiB: each worker has started and run
/// at least one trivial job, the pool is idle for 100 ms, then every worker's `VmRSS` is read
/// (pids from ``ProcessPool/workerPIDs``). Median over the workers of three pools.
func workerResident(_ method: StartMethod) async throws -> Double {
    var readings: [Double] = []
    var proportional: [Double] = []
    for _ in 0..<3 {
        var options = PoolOptions()
        options.startMethod = method
        let (rss, pss) = try await withProcessPool(workers: 2, options: options) { pool in
            var seen: Set<Int32> = []
            for _ in 0..<100 where seen.count < 2 {
                seen.formUnion(try await pool.map(WorkerPID(), over: 0..<4, chunkSize: 1))
            }
            await pool.waitUntilIdle()
            try await Task.sleep(for: .milliseconds(100))
            let pids = pool.workerPIDs
            precondition(seen.count == 2 && Set(pids) == seen, "workers \(pids) vs jobs' pids \(seen)")
            return (pids.compactMap { procMiB($0) }, pids.compactMap { procMiB($0, "smaps_rollup", "Pss:") })
        }
        readings += rss
        proportional += pss
    }
    if getenv("MP_BENCH_VERBOSE") != nil {
        print("  \(method) workers: VmRSS \(readings) MiB, Pss \(proportional) MiB")
    }
    return median(readings)
}

/// Asks the measuring loop's companions to stop.
final class StopFlag: Sendable {
    let stopped = Atomic<Bool>(false)
    let rounds = Atomic<Int>(0)
}

/// Round trips of `apply` (µs) measured one after another by one task while two other tasks each
/// keep one `apply` of the same pool (2 workers) in flight; returns the median and the 99th
/// percentile of `samples` round trips.
func loadedApply(samples count: Int) async throws -> (p50: Double, p99: Double) {
    try await withProcessPool(workers: 2) { pool in
        for i in 0..<200 { _ = try await pool.apply(Identity(), i) }
        let flag = StopFlag()
        let loaders = (0..<2).map { _ in
            Task.detached {
                var i = 0
                while !flag.stopped.load(ordering: .relaxed) {
                    _ = try await pool.apply(Identity(), i)
                    i += 1
                    flag.rounds.add(1, ordering: .relaxed)
                }
                return i
            }
        }
        // The loaders are in their stride before the first sample (a bounded wait: a loader that
        // failed shows its error below instead of hanging the run).
        for _ in 0..<5000 where flag.rounds.load(ordering: .relaxed) < 400 {
            try await Task.sleep(for: .milliseconds(1))
        }
        var samples: [Double] = []
        samples.reserveCapacity(count)
        for i in 0..<count {
            let start = ContinuousClock.now
            _ = try await pool.apply(Identity(), i)
            samples.append(seconds(ContinuousClock.now - start) * 1e6)
        }
        flag.stopped.store(true, ordering: .relaxed)
        var loaded = 0
        for loader in loaders { loaded += try await loader.value }
        samples.sort()
        if getenv("MP_BENCH_VERBOSE") != nil {
            print("  \(count) samples, \(loaded) applies by the loaders, max \(samples.last ?? .nan) us")
        }
        return (samples[count / 2], samples[(count - 1) * 99 / 100])
    }
}

/// Both figures come from one measurement when both entries are asked for.
let loadedApplyFigures = Mutex<(p50: Double, p99: Double)?>(nil)

func loadedApplyFigure(_ pick: @Sendable ((p50: Double, p99: Double)) -> Double) async throws -> Double {
    if let figures = loadedApplyFigures.withLock({ $0 }) { return pick(figures) }
    let figures = try await loadedApply(samples: 5000)
    loadedApplyFigures.withLock { $0 = figures }
    return pick(figures)
}

let poolFiguresCatalogue: [CatalogueEntry] = [
    ("pool_map_1mib", "MB/s", "higher", { try await poolMapMebibytes(count: 128) }),
    ("worker_rss", "MiB", "lower", { try await workerResident(.spawn) }),
    ("worker_rss_forkserver", "MiB", "lower", { try await workerResident(.forkserver) }),
    ("apply_p99", "us", "lower", { try await loadedApplyFigure { $0.p99 } }),
    ("apply_p50_loaded", "us", "lower", { try await loadedApplyFigure { $0.p50 } }),
]

extension PythonBaseline {
    static let poolFiguresSnippet = #"""
        import os, threading

        def _touch(b):
            out = bytearray(b); out[0] = (out[0] + 1) & 255
            return out

        def pool_map_mib(n):
            size = 1 << 20
            inputs = [bytes([i & 255]) * size for i in range(n)]
            with mp.Pool(2) as p:
                p.map(_touch, inputs[:4])
                rates = []
                for _ in range(3):
                    t = time.perf_counter(); out = p.map(_touch, inputs)
                    rates.append(2 * n * size / (time.perf_counter() - t) / 1e6)
                    assert len(out) == n and all(len(o) == size and o[0] == (i + 1) & 255 for i, o in enumerate(out))
                return statistics.median(rates)

        def _worker_pid(x):
            time.sleep(0.01)
            return os.getpid()

        def _resident_mib(pid):
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"): return int(line.split()[1]) / 1024

        def worker_rss(method):
            readings = []
            for _ in range(3):
                with mp.get_context(method).Pool(2) as p:
                    seen = set()
                    for _ in range(100):
                        if len(seen) == 2: break
                        seen.update(p.map(_worker_pid, range(4), chunksize=1))
                    time.sleep(0.1)
                    readings += [_resident_mib(pid) for pid in sorted(seen)]
            return statistics.median(readings)

        _loaded = {}

        def loaded_apply(n):
            if "figures" in _loaded: return _loaded["figures"]
            with mp.Pool(2) as p:
                for i in range(200): p.apply_async(ident, (i,)).get()
                stop = threading.Event(); rounds = [0, 0]
                def load(k):
                    i = 0
                    while not stop.is_set():
                        p.apply_async(ident, (i,)).get(); i += 1; rounds[k] = i
                loaders = [threading.Thread(target=load, args=(k,)) for k in range(2)]
                for t in loaders: t.start()
                while sum(rounds) < 400: time.sleep(0.001)
                samples = []
                for i in range(n):
                    t = time.perf_counter(); p.apply_async(ident, (i,)).get()
                    samples.append((time.perf_counter() - t) * 1e6)
                stop.set()
                for t in loaders: t.join()
            samples.sort()
            _loaded["figures"] = (samples[n // 2], samples[(n - 1) * 99 // 100])
            return _loaded["figures"]

        BENCH["pool_map_1mib"] = lambda: pool_map_mib(128)
        BENCH["worker_rss"] = lambda: worker_rss("spawn")
        BENCH["worker_rss_forkserver"] = lambda: worker_rss("forkserver")
        BENCH["apply_p99"] = lambda: loaded_apply(5000)[1]
        BENCH["apply_p50_loaded"] = lambda: loaded_apply(5000)[0]
        """#
}
