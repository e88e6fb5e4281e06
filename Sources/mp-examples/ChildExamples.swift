import Multiprocessing

#if canImport(Glibc)
    import Glibc
#endif

// One-off children: a common join loop over different task types, and a child's captured stdout.

/// Prints a small report on stdout.
struct Reporter: ProcessTask {
    var lines: Int
    func run() async throws {
        for i in 1...lines { print("report line \(i) from \(CurrentProcess.name)") }
    }
}

/// Works for a moment and returns nothing.
struct Snoozer: ProcessTask {
    var delay: Duration
    func run() async throws { try await Task.sleep(for: delay) }
}

let childExamples: [Example] = [
    (
        "child-output", "children of different task types in one join loop; a child's stdout captured",
        {
            let reporter = try ChildProcess(
                Reporter(lines: 3), name: "reporter", capturesStandardOutput: true)
            let children: [any AnyChildProcess] = [
                reporter,
                try ChildProcess(Snoozer(delay: .milliseconds(50)), name: "snoozer"),
            ]
            for child in children { try await child.start() }  // `ps` lists them as reporter, snoozer
            for child in children { say("\(child.name) (pid \(child.pid ?? 0)): \(try await child.join())") }
            say("what reporter printed:")
            for line in reporter.standardOutput.split(separator: "\n") { say("  \(line)") }
        }
    )
]
