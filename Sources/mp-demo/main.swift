import Multiprocessing
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

// mp-demo: swift-multiprocessing doing real work. Run with `swift run -c release mp-demo`.

/// Prints and flushes, so the parent's lines and its children's stay in order in a pipe too.
func say(_ line: String) {
    print(line)
    fflush(nil)
}

func elapsed(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

func format(_ value: Double, _ digits: Int = 2) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    return "\((value * scale).rounded() / scale)"
}

say(
    "swift-multiprocessing demo — \(CurrentProcess.name), pid \(CurrentProcess.pid), \(CurrentProcess.cpuCount) usable CPUs\n"
)

// 1. The seeds' Process examples.
say("1. Run a function in another process")
let first = try ChildProcess(SleepThenPrint())
try first.start()
say("  Waiting for the process...")
try await first.join()

say("\n   ...with arguments")
let second = try ChildProcess(
    DelayedMessage(delay: .seconds(1.5), message: "New message from another process"))
try second.start()
say("  Waiting for the process...")
try await second.join()

say("\n   ...a custom process type that returns a value")
let custom = try ChildProcess(CustomProcess(), name: "CustomProcess-1")
try custom.start()
say("  Waiting for the process to finish")
say("  returned \(try await custom.value), \(try await custom.join())")

// 2. CPU-bound work split across the machine.
let limit = 6_000_000
let blockSize = 50_000
let workers = CurrentProcess.cpuCount
say("\n2. Count the primes below \(limit): one child, then \(workers) children")
var start = ContinuousClock.now
let alone = try ChildProcess(
    PrimeCounter(limit: limit, blockSize: blockSize, first: 0, stride: 1), name: "primes-alone")
try alone.start()
let serialCount = try await alone.value
let serialTime = elapsed(since: start)
say("  1 child:  \(serialCount) primes in \(format(serialTime)) s")

start = ContinuousClock.now
let team = try (0..<workers).map { k in
    try ChildProcess(
        PrimeCounter(limit: limit, blockSize: blockSize, first: k, stride: workers), name: "primes-\(k)")
}
for child in team { try child.start() }
var parallelCount = 0
for child in team { parallelCount += try await child.value }
let parallelTime = elapsed(since: start)
say(
    "  \(workers) children: \(parallelCount) primes in \(format(parallelTime)) s — speedup \(format(serialTime / parallelTime))x"
)
precondition(parallelCount == serialCount, "the split work must agree with the serial count")

// 3. Talking to a child while it works.
say("\n3. A child streams progress over a channel")
let (updates, sender) = try ProcessChannel<Int>.oneWay()
let reporter = try ChildProcess(ProgressReporter(updates: sender, steps: 10), name: "reporter")
try reporter.start()
for try await step in updates.messages {
    let bar = String(repeating: "#", count: step) + String(repeating: ".", count: 10 - step)
    say("  [\(bar)] \(step)/10")
}
say("  \(try await reporter.value)")

// 4. Crashes are contained.
say("\n4. A crashing child is reported; the parent carries on")
for input in ["1,2,3", "4,five,6"] {
    let parser = try ChildProcess(FragileParser(input: input), name: "parser")
    try parser.start()
    do {
        say("  parse \"\(input)\" -> \(try await parser.value)")
    } catch ProcessError.crashed(let crash) {
        say("  parse \"\(input)\" -> crashed: \(crash.status)")
        if let message = crash.standardErrorTail.first(where: { $0.contains("Fatal error") }) {
            say("    its last words on stderr: \(message)")
        }
    }
}
let runaway = try ChildProcess(RunawayTask(), name: "runaway")
try runaway.start()
if try await runaway.join(timeout: .milliseconds(300)) == nil {
    runaway.kill()
    say("  runaway child stopped after 300 ms: \(try await runaway.join())")
}
// 5. The same count on a process pool, with a progress bar.
say("\n5. The prime count again, on a pool of \(workers) workers, with a progress bar")
start = ContinuousClock.now
let bar = ProgressBar(width: 30, interactive: isatty(1) != 0)
let pooledCount = try await withProcessPool(workers: .cpuCount) { pool in
    let counts = try await pool.map(
        PrimesInBlock(blockSize: blockSize), over: 0..<(limit / blockSize), chunkSize: 1
    ) {
        bar.draw($0)
    }
    return counts.reduce(0, +)
}
say("\n  \(pooledCount) primes in \(format(elapsed(since: start))) s")
precondition(pooledCount == serialCount, "the pool must agree with the serial count")

// 6. The same count as a pipeline: a queue of blocks, consumers, shared state.
say("\n6. The prime count as a pipeline: a JoinableQueue feeds \(workers) consumer processes")
start = ContinuousClock.now
let blocks = try JoinableQueue<Int>(capacity: 16)
let total = try SharedValue(0)
let tallies = try Manager().dictionary([String: Int].self)
let console = try ProcessLock()
let consumers = try (0..<workers).map { i in
    try ChildProcess(
        BlockConsumer(blocks: blocks, total: total, tallies: tallies, console: console, blockSize: blockSize),
        name: "consumer-\(i + 1)")
}
for consumer in consumers { try consumer.start() }
for block in 0..<(limit / blockSize) { try await blocks.put(block) }  // Waits while 16 are queued.
try await blocks.join()  // Every block taken and marked done.
blocks.close()  // The consumers' loops end.
for consumer in consumers { try await consumer.value }
let pipelineCount = total.load()
let perConsumer = try tallies.snapshot.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }
say(
    "  \(pipelineCount) primes in \(format(elapsed(since: start))) s; blocks per consumer: \(perConsumer.joined(separator: ", "))"
)
precondition(pipelineCount == serialCount, "the pipeline must agree with the serial count")

say("\nAll done; every child was reaped.")

/// A terminal progress bar: redrawn in place on a terminal, a line per quarter otherwise.
/// Updates may arrive from several workers' drivers at once, and out of order.
final class ProgressBar: Sendable {
    let width: Int
    let interactive: Bool
    private let shown = Mutex(0)

    init(width: Int, interactive: Bool) {
        self.width = width
        self.interactive = interactive
    }

    func draw(_ progress: PoolProgress) {
        shown.withLock { shown in
            guard progress.completed > shown else { return }
            let quarter = { (n: Int) in n * 4 / max(1, progress.total) }
            if !interactive && quarter(progress.completed) == quarter(shown)
                && progress.completed != progress.total
            {
                shown = progress.completed
                return
            }
            shown = progress.completed
            let filled = Int(progress.fraction * Double(width))
            let line =
                "  [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                + "] \(progress.completed)/\(progress.total)"
            print(interactive ? "\r" + line : line, terminator: interactive ? "" : "\n")
            fflush(nil)
        }
    }
}
