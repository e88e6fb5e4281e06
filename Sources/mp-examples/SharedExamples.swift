import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

// The seeds' shared state: a shared counter driving a progress bar, CPython's Value/Array
// example, and a Lock guarding a print.

/// Works through its share of items, counting each one finished in the shared counter.
struct CountedWorker: ProcessTask {
    var done: SharedValue<Int>
    var items: Range<Int>
    func run() async throws {
        for item in items {
            var x = UInt64(item) | 1
            for _ in 0..<3_000_000 { x = x &* 6_364_136_223_846_793_005 &+ 1 }  // Some real work.
            if x == 0 { print("unreachable") }
            done.add(1)
        }
    }
}

/// CPython's `f(n, a)`: sets the number, negates the array in place.
struct NegateInPlace: ProcessTask {
    var number: SharedValue<Double>
    var array: SharedArray<Int32>
    func run() async throws {
        number.set(3.1415927)
        array.withLockBlocking { buffer in
            for i in buffer.indices { buffer[i] = -buffer[i] }
        }
    }
}

/// CPython's `f(l, i)`: prints while holding the lock, so lines never interleave.
struct GreetUnderLock: ProcessTask {
    var lock: ProcessLock
    var number: Int
    func run() async throws {
        lock.withLockBlocking {
            print("hello world", number)
            fflush(nil)
        }
    }
}

let sharedExamples: [Example] = [
    (
        "shared-progress", "a shared counter drives a progress bar while children work",
        {
            let total = 400
            let done = try SharedValue(0)
            let workers = CurrentProcess.cpuCount
            let share = (total + workers - 1) / workers
            let children = try (0..<workers).map { w in
                try ChildProcess(
                    CountedWorker(done: done, items: min(w * share, total)..<min((w + 1) * share, total)))
            }
            for child in children { try await child.start() }
            var shown = -1
            while shown < total {
                let now = done.load()
                if now * 20 / total != shown * 20 / total || now == total {
                    let bar = String(repeating: "#", count: now * 20 / total)
                    say("[\(bar.padding(20))] \(now)/\(total)")
                }
                shown = now
                if now < total { try await Task.sleep(for: .milliseconds(20)) }
            }
            for child in children { try await child.value }
        }
    ),
    (
        "shared-value-array", "a Value and an Array changed by a child, read by the parent",
        {
            let number = try SharedValue(0.0)
            let array = try SharedArray<Int32>(0..<10)
            let child = try ChildProcess(NegateInPlace(number: number, array: array))
            try await child.start()
            try await child.value
            say("\(number.get())")
            say("\(Array(array))")
        }
    ),
    (
        "lock-print", "ten processes print, one at a time, under a shared Lock",
        {
            let lock = try ProcessLock()
            let children = try (0..<10).map { try ChildProcess(GreetUnderLock(lock: lock, number: $0)) }
            for child in children { try await child.start() }
            for child in children { try await child.value }
        }
    ),
]

extension String {
    fileprivate func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
