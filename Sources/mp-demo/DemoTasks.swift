import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

// The seeds' Process examples, in Swift.

/// `Process(target=task)`: block for a moment, then print.
struct SleepThenPrint: ProcessTask {
    func run() async throws {
        try await Task.sleep(for: .seconds(1))
        print("  This is from another process")
    }
}

/// `Process(target=task, args=(1.5, 'New message from another process'))`.
struct DelayedMessage: ProcessTask {
    var delay: Duration
    var message: String
    func run() async throws {
        try await Task.sleep(for: delay)
        print("  \(message)")
    }
}

/// The "extend Process and override run()" example that also hands a value back.
struct CustomProcess: ProcessTask {
    func run() async throws -> Int {
        try await Task.sleep(for: .seconds(1))
        print("  This is coming from another process (\(CurrentProcess.name), pid \(CurrentProcess.pid))")
        return 99
    }
}

/// CPU-bound work: counts the primes in blocks `first, first + stride, ...` of `[0, limit)`.
struct PrimeCounter: ProcessTask {
    var limit: Int
    var blockSize: Int
    var first: Int
    var stride: Int

    func run() async throws -> Int {
        var count = 0
        var block = first
        while block * blockSize < limit {
            let low = block * blockSize
            for n in low..<min(low + blockSize, limit) where Self.isPrime(n) { count += 1 }
            block += stride
        }
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

/// A parser that crashes on some input, as C libraries and careless code do.
struct FragileParser: ProcessTask {
    var input: String
    func run() async throws -> Int {
        var total = 0
        for field in input.split(separator: ",") {
            guard let value = Int(field) else { fatalError("cannot parse field \"\(field)\"") }  // A trap.
            total += value
        }
        return total
    }
}

/// Uses more and more memory until something stops it (here: the parent, with SIGKILL).
struct RunawayTask: ProcessTask {
    func run() async throws {
        var hoard: [[UInt8]] = []
        while true {
            hoard.append([UInt8](repeating: 1, count: 1 << 20))
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// Streams progress updates to the parent over a channel while it works.
struct ProgressReporter: ProcessTask {
    var updates: ChannelSender<Int>
    var steps: Int
    func run() async throws -> String {
        for step in 1...steps {
            try await Task.sleep(for: .milliseconds(60))
            try await updates.send(step)
        }
        return "finished \(steps) steps in \(CurrentProcess.name)"
    }
}

/// The prime count as a pool function: one block of `blockSize` numbers per call.
struct PrimesInBlock: ProcessFunction {
    var blockSize: Int
    func callAsFunction(_ block: Int) async throws -> Int {
        var count = 0
        for n in (block * blockSize)..<((block + 1) * blockSize) where PrimeCounter.isPrime(n) { count += 1 }
        return count
    }
}

/// Takes block numbers from a queue until it closes, counts their primes into a shared total,
/// keeps its own tally in a shared dictionary, and marks each block done.
struct BlockConsumer: ProcessTask {
    var blocks: JoinableQueue<Int>
    var total: SharedValue<Int>
    var tallies: SharedDictionary<String, Int>
    var console: ProcessLock
    var blockSize: Int

    func run() async throws {
        var mine = 0
        for try await block in blocks.items {
            let count = try await PrimesInBlock(blockSize: blockSize)(block)
            total.add(count)
            try tallies.update(CurrentProcess.name, default: 0) { $0 += 1 }
            try blocks.taskDone()
            mine += 1
        }
        console.withLockBlocking {
            print("  \(CurrentProcess.name) saw the queue close after \(mine) blocks")
            fflush(nil)
        }
    }
}
