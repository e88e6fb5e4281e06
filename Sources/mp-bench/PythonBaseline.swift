import BenchSupport

#if canImport(Glibc)
    import Glibc
#endif

/// CPython's `multiprocessing` measured by the same run: the script prints `name value` lines.
enum PythonBaseline {
    /// Every area's functions, then the runner. Each area's snippet adds `BENCH[name] = fn`.
    static var script: String {
        ([core] + areaSnippets).joined(separator: "\n") + runner
    }

    static let runner = #"""

        if __name__ == "__main__":
            for name in sys.argv[1:]:
                if name in BENCH: print(name, BENCH[name](), flush=True)
        """#

    static let core = #"""
        import multiprocessing as mp, time, statistics, sys

        def noop(): pass

        def echo(c):
            while True:
                x = c.recv()
                if x is None: break
                c.send(x)

        def sender(c, n):
            buf = b"x" * (1 << 20)
            c.send_bytes(b"go")
            for _ in range(n): c.send_bytes(buf)
            c.close()

        def start_ms(method, n):
            ctx = mp.get_context(method)
            p = ctx.Process(target=noop); p.start(); p.join()
            samples = []
            for _ in range(n):
                t = time.perf_counter(); p = ctx.Process(target=noop); p.start(); p.join()
                samples.append((time.perf_counter() - t) * 1e3)
            return statistics.median(samples)

        def roundtrip_us(n):
            a, b = mp.Pipe()
            p = mp.Process(target=echo, args=(b,)); p.start()
            for i in range(200): a.send(i); a.recv()
            rounds = []
            for r in range(5):
                t = time.perf_counter()
                for i in range(n): a.send(i); a.recv()
                rounds.append((time.perf_counter() - t) / n * 1e6)
            a.send(None); p.join()
            return statistics.median(rounds)

        def throughput_mbs(n):
            r, w = mp.Pipe(duplex=False)
            p = mp.Process(target=sender, args=(w, n)); p.start(); w.close()
            r.recv_bytes(); t = time.perf_counter()
            for _ in range(n): r.recv_bytes()
            dt = time.perf_counter() - t; p.join()
            return n * (1 << 20) / dt / 1e6

        def ident(x): return x

        def churn(seed):
            x = seed | 1
            for _ in range(200_000): x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
            return x >> 1

        def die(x):
            import os, signal
            os.kill(os.getpid(), signal.SIGKILL)

        def pool_map(chunksize):
            with mp.Pool(2) as p:
                p.map(ident, range(1000))
                runs = []
                for _ in range(3):
                    t = time.perf_counter(); p.map(ident, range(100_000), chunksize=chunksize)
                    runs.append(100_000 / (time.perf_counter() - t))
                return statistics.median(runs)

        def pool_apply(n):
            with mp.Pool(2) as p:
                for i in range(200): p.apply_async(ident, (i,)).get()
                rounds = []
                for _ in range(5):
                    t = time.perf_counter()
                    for i in range(n): p.apply_async(ident, (i,)).get()
                    rounds.append((time.perf_counter() - t) / n * 1e6)
                return statistics.median(rounds)

        def pool_speedup():
            def timed(workers):
                with mp.Pool(workers) as p:
                    p.map(ident, range(workers), chunksize=1)
                    t = time.perf_counter(); p.map(churn, range(40), chunksize=1)
                    return time.perf_counter() - t
            ones, twos = [], []
            for _ in range(5): ones.append(timed(1)); twos.append(timed(2))
            return statistics.median(ones) / statistics.median(twos)

        def pool_crash():
            import concurrent.futures as cf
            samples = []
            for _ in range(10):
                with cf.ProcessPoolExecutor(2) as ex:
                    list(ex.map(ident, range(2)))
                    t = time.perf_counter()
                    try: ex.submit(die, 0).result()
                    except cf.process.BrokenProcessPool: samples.append((time.perf_counter() - t) * 1e3)
            return statistics.median(samples)

        BENCH = {
            "process_start_spawn": lambda: start_ms("spawn", 20),
            "process_start_fast": lambda: start_ms("fork", 100),
            "channel_roundtrip": lambda: roundtrip_us(5000),
            "channel_throughput_1mib": lambda: statistics.median(throughput_mbs(500) for _ in range(3)),
            "pool_map_chunk1": lambda: pool_map(1),
            "pool_map_auto": lambda: pool_map(None),
            "pool_apply_roundtrip": lambda: pool_apply(5000),
            "pool_cpu_speedup": pool_speedup,
            "pool_crash_detect": pool_crash,
        }
        """#

    /// Runs the script with `python3` for `names`; `nil` values when python3 is missing.
    static func measure(_ names: [String]) -> [String: Double] {
        let path = "/tmp/mp-bench-baseline-\(getpid()).py"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { return [:] }
        _ = Array(script.utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        defer { unlink(path) }
        // runProgram clears the signal mask: CPython's Pool.terminate() relies on SIGTERM
        // reaching its workers, and Swift's worker threads block most signals.
        let (status, output) = runProgram(["python3", path] + names)
        guard status >= 0 else { return [:] }
        var results: [String: Double] = [:]
        for line in output.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = Double(parts[1]) { results[String(parts[0])] = value }
        }
        return results
    }
}
