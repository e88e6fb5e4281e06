import Multiprocessing
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Counts its calls in a shared value: a pool function carrying a handle.
struct CountingSquare: ProcessFunction {
    var calls: SharedValue<Int>
    func callAsFunction(_ x: Int) async throws -> Int {
        calls.add(1)
        return x * x
    }
}

/// Records each worker's pid in a shared array as the worker starts.
struct RecordWorkerStart: ProcessTask {
    var started: SharedArray<Int32>
    var next: SharedValue<Int>
    func run() async throws {
        let slot = next.add(1) - 1
        if slot < started.count { started[slot] = getpid() }
    }
}

@Suite("Pool with shared state")
struct PoolSharedStateTests {
    @Test("a function's shared handles reach every worker; an initializer's too")
    func handlesInFunctionsAndInitializers() async throws {
        let calls = try SharedValue(0)
        let started = try SharedArray<Int32>(repeating: 0, count: 8)
        let next = try SharedValue(0)
        var options = PoolOptions()
        options.initializer = try PoolInitializer(RecordWorkerStart(started: started, next: next))
        options.maxTasksPerWorker = 10
        let squares = try await withProcessPool(workers: 2, options: options) {
            (pool: ProcessPool) async throws in
            let mapped = try await pool.map(CountingSquare(calls: calls), over: 0..<100, chunkSize: 5)
            let applied = try await pool.apply(CountingSquare(calls: calls), 12)
            return mapped + [applied]
        }
        #expect(squares == (0..<100).map { $0 * $0 } + [144])
        #expect(calls.load() == 101)
        // 21 jobs, 10 per worker: replacements ran the initializer too, each in its own process.
        let pids = started.snapshot.prefix(min(next.load(), started.count))
        #expect(next.load() >= 3)
        #expect(Set(pids).count == pids.count && !pids.contains(0))
    }
}
