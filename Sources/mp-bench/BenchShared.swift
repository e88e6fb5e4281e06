import BenchSupport
import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

// Shared memory and locks: two processes hammering one counter, and a lock passed back and forth.

func monotonicNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// Waits until both racers are ready, then increments `count` times and records its interval.
struct CounterRacer: ProcessTask {
    var value: SharedValue<Int>
    var ready: SharedValue<Int>
    var times: SharedArray<Int64>
    var slot: Int
    var count: Int
    var locked: Bool
    func run() async throws {
        ready.add(1)
        while ready.load() < 2 {}
        let start = monotonicNanoseconds()
        if locked {
            for _ in 0..<count { value.withLockBlocking { $0 += 1 } }
        } else {
            for _ in 0..<count { value.add(1) }
        }
        times[slot * 2] = start
        times[slot * 2 + 1] = monotonicNanoseconds()
    }
}

/// The other side of the lock ping-pong: takes `ping` (released by the parent), gives `pong`.
struct LockPonger: ProcessTask {
    var ping: ProcessLock
    var pong: ProcessLock
    var rounds: Int
    func run() async throws {
        for _ in 0..<rounds {
            try ping.acquireBlocking()
            try pong.release()
        }
    }
}

/// Increments per second, two processes racing on one counter (median of three races).
func counterRace(locked: Bool, count: Int) async throws -> Double {
    var rates: [Double] = []
    for _ in 0..<3 {
        let value = try SharedValue(0)
        let ready = try SharedValue(0)
        let times = try SharedArray<Int64>(repeating: 0, count: 4)
        let racers = try (0..<2).map { slot in
            try ChildProcess(
                CounterRacer(
                    value: value, ready: ready, times: times, slot: slot, count: count, locked: locked))
        }
        for racer in racers { try await racer.start() }
        for racer in racers { try await racer.value }
        precondition(value.load() == 2 * count, "lost increments: \(value.load()) of \(2 * count)")
        let elapsed = Double(max(times[1], times[3]) - min(times[0], times[2])) / 1e9
        rates.append(Double(2 * count) / elapsed)
    }
    return median(rates)
}

/// Microseconds per handoff (half a round trip) of a lock between two processes.
func lockHandoff(rounds: Int) async throws -> Double {
    let warmup = 500
    let ping = try ProcessLock()
    let pong = try ProcessLock()
    try ping.acquireBlocking()
    try pong.acquireBlocking()
    let ponger = try ChildProcess(LockPonger(ping: ping, pong: pong, rounds: warmup + 3 * rounds))
    try await ponger.start()
    for _ in 0..<warmup {
        try ping.release()
        try pong.acquireBlocking()
    }
    var samples: [Double] = []
    for _ in 0..<3 {
        let start = ContinuousClock.now
        for _ in 0..<rounds {
            try ping.release()
            try pong.acquireBlocking()
        }
        samples.append(seconds(ContinuousClock.now - start) / Double(rounds) / 2 * 1e6)
    }
    try await ponger.value
    return median(samples)
}

let sharedCatalogue: [CatalogueEntry] = [
    (
        "shared_value_atomic_incr", "incr/s", "higher",
        { try await counterRace(locked: false, count: 5_000_000) }
    ),
    (
        "shared_value_locked_incr", "incr/s", "higher",
        { try await counterRace(locked: true, count: 2_000_000) }
    ),
    ("lock_handoff", "us", "lower", { try await lockHandoff(rounds: 20_000) }),
]

extension PythonBaseline {
    static let sharedSnippet = #"""
        def _counter_racer(v, ready, times, slot, n):
            with ready.get_lock(): ready.value += 1
            while ready.value < 2: pass
            t = time.monotonic_ns()
            for _ in range(n):
                with v.get_lock(): v.value += 1
            times[slot * 2] = t; times[slot * 2 + 1] = time.monotonic_ns()

        def counter_race(n):
            rates = []
            for _ in range(3):
                v = mp.Value('q', 0); ready = mp.Value('i', 0); times = mp.Array('q', 4)
                ps = [mp.Process(target=_counter_racer, args=(v, ready, times, i, n)) for i in range(2)]
                for p in ps: p.start()
                for p in ps: p.join()
                assert v.value == 2 * n
                rates.append(2 * n / ((max(times[1], times[3]) - min(times[0], times[2])) / 1e9))
            return statistics.median(rates)

        def _lock_ponger(ping, pong, n):
            for _ in range(n): ping.acquire(); pong.release()

        def lock_handoff(rounds):
            warmup = 500
            ping = mp.Lock(); pong = mp.Lock(); ping.acquire(); pong.acquire()
            p = mp.Process(target=_lock_ponger, args=(ping, pong, warmup + 3 * rounds)); p.start()
            for _ in range(warmup): ping.release(); pong.acquire()
            samples = []
            for _ in range(3):
                t = time.perf_counter()
                for _ in range(rounds): ping.release(); pong.acquire()
                samples.append((time.perf_counter() - t) / rounds / 2 * 1e6)
            p.join()
            return statistics.median(samples)

        # CPython has no atomic add: both Swift entries race against `with v.get_lock(): v.value += 1`.
        BENCH["shared_value_atomic_incr"] = lambda: counter_race(200_000)
        BENCH["shared_value_locked_incr"] = lambda: counter_race(200_000)
        BENCH["lock_handoff"] = lambda: lock_handoff(20_000)
        """#
}
