import Multiprocessing

// Crash reports: where a child crashed, in release builds too (where a trap prints no message).

/// The README's parser: a force-unwrapped `nil` on bad input.
struct ParseFields: ProcessTask {
    var text: String
    func run() async throws -> [Int] { text.split(separator: ",").map { Int($0)! } }
}

/// Reads past the end of an array, two calls down.
struct LookUp: ProcessTask {
    var table: [Int]
    var index: Int
    func run() async throws -> Int { total(upTo: index) }

    @inline(never) func total(upTo index: Int) -> Int { entry(index) + entry(0) }
    @inline(never) func entry(_ index: Int) -> Int { table[index] }
}

let crashExamples: [Example] = [
    (
        "crash-report", "where a child crashed: the function and the backtrace, from its crash handler",
        {
            for child in [
                try ChildProcess(ParseFields(text: "1,x"), name: "parser") as any CrashingChild,
                try ChildProcess(LookUp(table: [1, 2, 3], index: 7), name: "lookup"),
            ] {
                try await child.start()
                do {
                    try await child.run()
                } catch ProcessError.crashed(let crash) {
                    say("\(crash.processName): \(crash.status)")
                    say("  crashed in: \(crash.crashingFunction ?? "(no report)")")
                    for (index, frame) in crash.backtrace.prefix(6).enumerated() {
                        say("  \(index) \(frame)")
                    }
                }
            }
        }
    )
]

/// Either child, so both run through one loop.
protocol CrashingChild: AnyChildProcess {
    func run() async throws
}

extension ChildProcess: CrashingChild where Work: ProcessTask, Work.Output: Decodable {
    func run() async throws { _ = try await value }
}
